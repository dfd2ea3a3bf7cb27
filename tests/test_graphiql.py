"""GraphiQL served by the gateway (gateway/graphiql.py), and every error a
GraphQL IDE can receive answered as coded JSON with the request id.

The assets are fetched the way an operator fetches them, from an npm
registry on loopback (a stand-in for the public one or a mirror) or from
tarballs copied in, for a throwaway package pinned in place of the real ones
(tests/test_browser.py runs the real ones in Chromium): integrity checked,
the manifest written last, a tampered or substituted tarball refused. Then
the page and the files as a browser gets them: only the gateway's own URLs,
a Content-Security-Policy to match, content types, immutable caching, ETags,
gzip; and, without the files, a page that says how to get them."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway import graphiql
from gateway.app import create_app
from gateway.cli import main as cli
from gateway.graphiql import MANIFEST, PACKAGES, AssetsError, Package, assets_problem, fetch_assets
from gateway.settings import load_settings
from tests.connectors.http_server import LiveServer
from tests.gateway_fixtures import SUPERVISOR, demo_token

IDE_JS = b"window.FakeIDE = {};\n" + b"// padding so that it is worth gzipping\n" * 60
IDE_CSS = b".fake-ide { color: #123; }\n"
LICENSE = b"MIT License (fake)\n"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


FAKE_TARBALL = tarball({"package/ide.js": IDE_JS, "package/ide.css": IDE_CSS,
                        "package/LICENSE": LICENSE, "package/README.md": b"not taken"})
FAKE = Package("fake-ide", "1.0.0", integrity(FAKE_TARBALL),
               (("ide.js", "package/ide.js"), ("ide.css", "package/ide.css"),
                ("LICENSE", "package/LICENSE")))


@pytest.fixture
def fake_pins(monkeypatch):
    """The throwaway package pinned in place of React, ReactDOM and GraphiQL."""
    monkeypatch.setattr(graphiql, "PACKAGES", (FAKE,))
    monkeypatch.setattr(graphiql, "SCRIPTS", ("fake-ide@1.0.0/ide.js",))
    monkeypatch.setattr(graphiql, "STYLESHEETS", ("fake-ide@1.0.0/ide.css",))
    return FAKE


class Registry:
    """An npm registry on loopback serving the fake package; ``tarball_url``
    and ``integrity`` as its metadata names them, ``body`` as it serves the tarball."""

    def __init__(self) -> None:
        self.body = FAKE_TARBALL
        self.integrity = FAKE.integrity
        self.tarball_url: str | None = None  # None: its own
        self.paths: list[str] = []
        self.server = LiveServer(Starlette(routes=[
            Route("/fake-ide/1.0.0", self.metadata),
            Route("/fake-ide/-/fake-ide-1.0.0.tgz", self.tarball),
        ]))

    async def metadata(self, request: Request) -> Response:
        self.paths.append(request.url.path)
        url = self.tarball_url or f"{self.server.url}/fake-ide/-/fake-ide-1.0.0.tgz"
        return Response(json.dumps({"name": "fake-ide", "version": "1.0.0", "dist": {
            "integrity": self.integrity, "tarball": url}}), media_type="application/json")

    async def tarball(self, request: Request) -> Response:
        self.paths.append(request.url.path)
        return Response(self.body, media_type="application/octet-stream")


@pytest.fixture
def registry(fake_pins):
    registry = Registry()
    with registry.server:
        yield registry


@pytest.fixture
def fetched(registry, tmp_path) -> Path:
    directory = tmp_path / "graphiql-assets"
    fetch_assets(directory, registry=registry.server.url)
    return directory


# ------------------------------------------------------------------ the pins


def test_the_pinned_packages_are_exact_versions_with_sha512_integrity():
    assert [p.name for p in PACKAGES] == ["react", "react-dom", "graphiql"]
    for package in PACKAGES:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package
        algorithm, digest = package.integrity.split("-", 1)
        assert algorithm == "sha512" and len(base64.b64decode(digest)) == 64
        assert ("LICENSE", "package/LICENSE") in package.files  # shipped with the code
    versions = {p.name: p.version for p in PACKAGES}
    # GraphiQL 3's UMD build runs on React 18's UMD builds (React 19 has none).
    assert versions["graphiql"].startswith("3.") and versions["react"].startswith("18.")
    assert versions["react"] == versions["react-dom"]
    served = {f"{p.folder}/{name}" for p in PACKAGES for name, _ in p.files}
    assert set(graphiql.SCRIPTS + graphiql.STYLESHEETS) <= served
    assert [s.split("@")[0] for s in graphiql.SCRIPTS] == ["react", "react-dom", "graphiql"]


# ------------------------------------------------------------------ fetching


def test_the_files_come_from_the_registry_checked_and_the_manifest_last(registry, tmp_path):
    directory = tmp_path / "assets"
    assert assets_problem(directory) is not None
    fetch_assets(directory, registry=registry.server.url + "/")
    assert registry.paths == ["/fake-ide/1.0.0", "/fake-ide/-/fake-ide-1.0.0.tgz"]
    assert (directory / "fake-ide@1.0.0/ide.js").read_bytes() == IDE_JS
    assert (directory / "fake-ide@1.0.0/LICENSE").read_bytes() == LICENSE
    assert sorted(p.name for p in (directory / "fake-ide@1.0.0").iterdir()) == [
        "LICENSE", "ide.css", "ide.js"]  # only the files named, not the whole package
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["packages"] == {"fake-ide": {"version": "1.0.0", "integrity": FAKE.integrity}}
    assert manifest["files"]["fake-ide@1.0.0/ide.js"] == {
        "size": len(IDE_JS),
        "sha256": "sha256-" + base64.b64encode(hashlib.sha256(IDE_JS).digest()).decode()}
    assert (directory / "fake-ide@1.0.0/ide.js").stat().st_mode & 0o777 == 0o644
    assert assets_problem(directory) is None


def test_a_tarball_other_than_the_pinned_one_is_refused(registry, tmp_path):
    registry.body = tarball({"package/ide.js": b"alert('substituted')",
                             "package/ide.css": IDE_CSS, "package/LICENSE": LICENSE})
    with pytest.raises(AssetsError, match="does not match the pinned integrity"):
        fetch_assets(tmp_path / "assets", registry=registry.server.url)
    assert not (tmp_path / "assets").exists()


def test_metadata_naming_another_integrity_is_refused_before_any_download(registry, tmp_path):
    registry.integrity = integrity(b"another build")
    with pytest.raises(AssetsError, match="not the pinned"):
        fetch_assets(tmp_path / "assets", registry=registry.server.url)
    assert registry.paths == ["/fake-ide/1.0.0"]


def test_a_mirror_pointing_at_the_public_address_serves_its_own_copy(registry, tmp_path):
    registry.tarball_url = "http://127.0.0.1:9/fake-ide/-/fake-ide-1.0.0.tgz"  # unreachable
    fetch_assets(tmp_path / "assets", registry=registry.server.url)
    assert registry.paths[-1] == "/fake-ide/-/fake-ide-1.0.0.tgz"
    assert assets_problem(tmp_path / "assets") is None


def test_an_unreachable_registry_is_said_and_changes_nothing(fake_pins, fetched):
    before = (fetched / MANIFEST).read_bytes()
    with pytest.raises(AssetsError, match="cannot be fetched"):
        fetch_assets(fetched, registry="http://127.0.0.1:9")
    assert (fetched / MANIFEST).read_bytes() == before


def test_the_registry_defaults_to_the_environments_mirror(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", registry.server.url)
    fetch_assets(tmp_path / "assets")
    assert registry.paths


def test_tarballs_copied_in_need_no_network(fake_pins, tmp_path, capsys):
    (tmp_path / "tarballs").mkdir()
    (tmp_path / "tarballs" / "fake-ide-1.0.0.tgz").write_bytes(FAKE_TARBALL)
    directory = tmp_path / "assets"
    assert cli(["graphiql-assets", "--dir", str(directory), "--from",
                str(tmp_path / "tarballs")]) == 0
    assert "integrity checked" in capsys.readouterr().out
    assert cli(["graphiql-assets", "--dir", str(directory), "--check"]) == 0
    assert cli(["graphiql-assets", "--dir", str(directory)]) == 0  # nothing to do
    assert "already in" in capsys.readouterr().out
    (tmp_path / "tarballs" / "fake-ide-1.0.0.tgz").write_bytes(FAKE_TARBALL[:-10])
    assert cli(["graphiql-assets", "--dir", str(directory), "--force", "--from",
                str(tmp_path / "tarballs")]) == 1
    assert "does not match the pinned integrity" in capsys.readouterr().err


def test_the_command_fills_the_configurations_directory(registry, tmp_path, capsys):
    from demo.generate import create_demo_data
    from tests.gateway_fixtures import TODAY

    config = create_demo_data(tmp_path / "demo", size=40, persons=10, today=TODAY)
    assert cli(["graphiql-assets", "--config", str(config), "--check"]) == 1
    assert "never fetched" in capsys.readouterr().err
    assert cli(["graphiql-assets", "--config", str(config), "--registry",
                registry.server.url]) == 0
    assert assets_problem(tmp_path / "demo" / "graphiql-assets") is None
    assert cli(["graphiql-assets", "--config", str(tmp_path / "none.toml")]) == 2


def test_the_demo_fetches_them_on_its_first_run(registry, tmp_path, monkeypatch, capsys):
    from demo.cli import ensure_graphiql_assets
    from demo.generate import create_demo_data
    from tests.gateway_fixtures import TODAY

    config = create_demo_data(tmp_path / "demo", size=40, persons=10, today=TODAY)
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://127.0.0.1:9")
    ensure_graphiql_assets(config)  # offline: a warning, and the demo goes on
    assert "could not be fetched" in capsys.readouterr().err
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", registry.server.url)
    ensure_graphiql_assets(config)
    assert assets_problem(tmp_path / "demo" / "graphiql-assets") is None
    fetched = len(registry.paths)
    ensure_graphiql_assets(config)  # the next runs: nothing fetched
    assert len(registry.paths) == fetched


def test_what_is_missing_is_said(fake_pins, fetched):
    assert "empty" in assets_problem("")
    assert "never fetched" in assets_problem(fetched.parent / "elsewhere")
    (fetched / "fake-ide@1.0.0/ide.css").write_bytes(IDE_CSS + b"/* edited */")
    assert assets_problem(fetched) == "fake-ide@1.0.0/ide.css is not the file the manifest names"
    (fetched / "fake-ide@1.0.0/ide.css").unlink()
    assert assets_problem(fetched) == "fake-ide@1.0.0/ide.css is missing"
    upgraded = dataclasses.replace(FAKE, version="1.1.0")
    graphiql.PACKAGES = (upgraded,)  # restored by the fake_pins fixture's monkeypatch
    assert assets_problem(fetched) == "they are for fake-ide 1.0.0, this gateway needs 1.1.0"


def test_an_upgrade_removes_the_older_versions(registry, tmp_path):
    directory = tmp_path / "assets"
    (directory / "fake-ide@0.9.0").mkdir(parents=True)
    (directory / "fake-ide@0.9.0" / "ide.js").write_text("old")
    (directory / "unrelated").mkdir()
    fetch_assets(directory, registry=registry.server.url)
    assert sorted(p.name for p in directory.iterdir()) == [
        "fake-ide@1.0.0", MANIFEST, "unrelated"]


# ------------------------------------------------------------------ serving


@pytest.fixture
def served(fake_pins, fetched, demo_settings):
    app = create_app(dataclasses.replace(demo_settings, graphiql_assets=str(fetched)))
    with TestClient(app) as client:
        yield client


def page_of(client) -> tuple:
    response = client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    return response, response.text


def test_the_page_loads_nothing_but_the_gateways_own_files(served):
    response, page = page_of(served)
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    urls = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert urls[0] == "data:,"  # the icon: no request for /favicon.ico
    assets = urls[1:]
    assert assets and all(u.startswith("graphql/assets/") for u in assets)
    assert "fake-ide@1.0.0/ide.js" in page and "fake-ide@1.0.0/ide.css" in page
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)
    for url, digest in re.findall(r'(?:src|href)="([^"]+)" integrity="([^"]+)"', page):
        body = served.get("/" + url, headers={"Accept-Encoding": "identity"}).content
        assert digest == "sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    # The form offers the catalog's purposes.
    assert '<option value="SUPERVISION">SUPERVISION · 事中事后监管</option>' in page
    assert '<option value="FINANCING">' in page and 'id="cg-token"' in page
    assert 'id="cg-document-id"' in page  # the saved-view control


def test_the_files_have_their_types_immutable_caching_and_etags(served):
    _, page = page_of(served)
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for url in re.findall(r'(?:src|href)="(graphql/assets/[^"]+)"', page):
        response = served.get("/" + url)
        assert response.status_code == 200
        assert response.headers["content-type"] == types[Path(url).suffix]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        etag = response.headers["etag"]
        again = served.get("/" + url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
    plain = served.get("/graphql/assets/fake-ide@1.0.0/ide.js",
                       headers={"Accept-Encoding": "identity"})
    assert plain.content == IDE_JS and "content-encoding" not in plain.headers
    zipped = served.get("/graphql/assets/fake-ide@1.0.0/ide.js",
                        headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == IDE_JS
    assert int(zipped.headers["content-length"]) < len(IDE_JS)
    licence = served.get("/graphql/assets/fake-ide@1.0.0/LICENSE")
    assert licence.headers["content-type"] == "text/plain; charset=utf-8"
    assert licence.content == LICENSE
    assert served.head("/graphql/assets/fake-ide@1.0.0/ide.css").status_code == 200


def json_error(response, status: int, code: str) -> dict:
    """The one coded error of a JSON error body, with the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] in (GRAPHQL_RESPONSE, "application/json")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    return error


@pytest.mark.parametrize("path", [
    "/graphql/assets/fake-ide@1.0.0/nope.js",
    "/graphql/assets/graphiql-assets.json",  # the manifest is not served
    "/graphql/assets/fake-ide@1.0.0/../" + MANIFEST,
    "/graphql/assets/fake-ide%401.0.0%2F..%2F..%2Fgraphiql-assets.json",
    "/graphql/assets/",
])
def test_anything_else_under_assets_is_a_coded_404(served, path):
    json_error(served.get(path), 404, "NOT_FOUND")


def test_a_file_changed_on_disk_is_not_served(fake_pins, fetched, demo_settings):
    app = create_app(dataclasses.replace(demo_settings, graphiql_assets=str(fetched)))
    (fetched / "fake-ide@1.0.0/ide.css").write_bytes(IDE_CSS.upper())  # same size
    with TestClient(app) as client:
        json_error(client.get("/graphql/assets/fake-ide@1.0.0/ide.css"), 404, "NOT_FOUND")
        assert client.get("/graphql/assets/fake-ide@1.0.0/ide.js").status_code == 200


def test_other_methods_on_the_files_are_a_coded_405(served):
    response = served.post("/graphql/assets/fake-ide@1.0.0/ide.js")
    json_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_without_its_files_the_page_says_how_to_get_them(demo_settings):
    with TestClient(create_app(demo_settings)) as client:  # no assets in the test data dir
        response, page = page_of(client)
    assert "GraphiQL is not installed on this gateway" in page
    assert "credit-gateway graphiql-assets" in page and "--registry" in page
    assert "never fetched" in page and "graphiql_assets" in page
    assert "<script" not in page  # nothing to wait for ("Loading..." forever)
    assert str(Path(demo_settings.graphiql_assets).parent) not in page  # no server path shown


def test_with_graphiql_off_there_is_no_page_and_no_files(demo_settings):
    with TestClient(create_app(dataclasses.replace(demo_settings, graphiql=False))) as client:
        json_error(client.get("/graphql", headers={"Accept": "text/html"}), 405,
                   "METHOD_NOT_ALLOWED")
        json_error(client.get("/graphql/assets/react@18.3.1/react.production.min.js"), 404,
                   "NOT_FOUND")


def test_graphiql_assets_is_relative_to_the_configuration(tmp_path):
    from demo.generate import create_demo_data
    from tests.gateway_fixtures import TODAY

    config = create_demo_data(tmp_path, size=40, persons=10, today=TODAY)
    assert load_settings(config, env={}).graphiql_assets == str(
        tmp_path.resolve() / "graphiql-assets")
    moved = load_settings(config, env={"CREDIT_GATEWAY_GRAPHIQL_ASSETS": "ide/files"})
    assert moved.graphiql_assets == str(tmp_path.resolve() / "ide" / "files")
    absolute = load_settings(config, env={"CREDIT_GATEWAY_GRAPHIQL_ASSETS": "/srv/ide"})
    assert absolute.graphiql_assets == "/srv/ide"


# ------------------------------------------------------ errors an IDE receives


@pytest.fixture(scope="module")
def client(demo_settings):
    with TestClient(create_app(demo_settings), raise_server_exceptions=False) as client:
        yield client


def auth(settings, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo_token(settings, SUPERVISOR[0])}",
            "X-Purpose-Of-Use": SUPERVISOR[1], "X-Request-Id": "ide-request-0001", **more}


IDE_ACCEPT = "application/graphql-response+json, application/json, multipart/mixed"


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), [
    ("PUT", "/graphql", b"{}", {}, 405, "METHOD_NOT_ALLOWED"),
    ("GET", "/graphql", None, {"Accept": "application/json"}, 405, "METHOD_NOT_ALLOWED"),
    ("POST", "/graphql", b'{"query": "{ __typename }"}', {"Accept": "text/plain"}, 406,
     "NOT_ACCEPTABLE"),
    ("POST", "/graphql", b"{ __typename }", {"Content-Type": "text/plain"}, 415,
     "UNSUPPORTED_MEDIA_TYPE"),
    ("POST", "/graphql", b" " * 1_048_577, {}, 413, "REQUEST_TOO_LARGE"),
    ("POST", "/graphql", b'{"query": "query A { __typename }", "operationName": "Old"}', {},
     400, "UNKNOWN_OPERATION_NAME"),
    ("POST", "/graphql", b'{"query": "query A { __typename } query B { __typename }"}', {},
     400, "OPERATION_NAME_REQUIRED"),
    ("GET", "/graphql/schema", None, {}, 404, "NOT_FOUND"),
    ("POST", "/graphql/v1", b"{}", {}, 404, "NOT_FOUND"),
    ("GET", "/graphiql", None, {"Accept": "text/html"}, 404, "NOT_FOUND"),
    ("POST", "/livez", b"", {}, 405, "METHOD_NOT_ALLOWED"),
])
def test_every_refusal_an_ide_can_meet_is_coded_json_with_the_request_id(
        client, demo_settings, method, path, body, headers, status, code):
    sent = {"Content-Type": "application/json", "Accept": IDE_ACCEPT,
            **auth(demo_settings), **headers}
    response = client.request(method, path, content=body, headers=sent)
    error = json_error(response, status, code)
    assert error["extensions"]["requestId"] == "ide-request-0001"
    assert error["message"]


def test_a_stale_operation_name_is_json_the_ide_can_show(client, demo_settings):
    """GraphiQL sending the name of an operation renamed since: 400 in the
    GraphQL shape (an IDE parsing text/plain showed "Unexpected token")."""
    response = client.post("/graphql", headers={**auth(demo_settings), "Accept": IDE_ACCEPT},
                           json={"query": "query Renamed { __typename }",
                                 "operationName": "Record"})
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.json() == {"errors": [{"message": 'Unknown operation named "Record".',
                                           "extensions": {"code": "UNKNOWN_OPERATION_NAME",
                                                          "requestId": "ide-request-0001"}}]}


def test_a_crash_outside_the_endpoint_is_a_coded_500(fake_pins, fetched, demo_settings,
                                                     monkeypatch):
    def boom(self, name):
        raise RuntimeError("a secret path /srv/x")

    monkeypatch.setattr(graphiql.Assets, "body", boom)
    app = create_app(dataclasses.replace(demo_settings, graphiql_assets=str(fetched)))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/graphql/assets/fake-ide@1.0.0/ide.js",
                              headers={"X-Request-Id": "crash-request-1"})
    error = json_error(response, 500, "INTERNAL_SERVER_ERROR")
    assert error == {"message": "Internal error.",
                     "extensions": {"code": "INTERNAL_SERVER_ERROR",
                                    "requestId": "crash-request-1"}}
    assert "secret" not in response.text
