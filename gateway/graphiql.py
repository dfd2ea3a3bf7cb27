"""GraphiQL served by the gateway itself, with no request beyond it.

The page (``GET /graphql`` asking for ``text/html``, where ``graphiql`` is
on) loads its JavaScript and CSS from ``/graphql/assets/...``, never from a
CDN: a government network without internet access gets a working IDE. No
third-party code is in this repository: the files come from the npm
registry's packages pinned in ``PACKAGES`` (exact versions, with the
tarballs' ``dist.integrity``), fetched once per installation by
``credit-gateway graphiql-assets`` (``fetch_assets``) into the directory of
the ``[gateway] graphiql_assets`` setting, from the public registry, an
internal npm mirror (``--registry``) or tarballs copied in by hand
(``--from``, as ``npm pack graphiql@3.8.3`` writes them). The directory can
also be copied whole from another machine. With ``graphiql`` on and no
(complete) assets there, the page says how to get them instead of loading
nothing.

The directory holds one folder per package (``graphiql@3.8.3/graphiql.min.js``)
and ``graphiql-assets.json``, the manifest: the packages' versions and
integrity and each file's size and SHA-256, written last. The gateway serves
only the files the manifest names, checked against their SHA-256 when first
read (then kept in memory, gzipped once for clients that accept it), with
``Cache-Control: immutable`` (their URLs carry the version) and an ``ETag``.

The page asks for an access token and a purpose once (a form above the IDE,
listing the catalog's purposes), puts them in GraphiQL's header editor as
``{"Authorization": "Bearer ...", "X-Purpose-Of-Use": "..."}`` (persisted in
the browser's localStorage, as GraphiQL does, unless its setting says not to)
and sends them with every request, the schema's introspection included: the
page's fetcher merges them under the header editor's own. A second form runs
a saved view (a persisted operation) by its ``documentId``, with the variables
editor's variables, and shows the answer in the result pane. The page's
Content-Security-Policy allows scripts, styles and requests to the gateway's
own origin only.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import json
import os
import subprocess
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

# The default of --registry: npm's own setting (the registry or internal mirror
# npm itself uses; not CREDIT_GATEWAY_*, whose names are all gateway settings),
# from the environment or else from ``npm config get registry``.
REGISTRY_ENVS = ("NPM_CONFIG_REGISTRY", "npm_config_registry")
MANIFEST = "graphiql-assets.json"
ASSETS_PATH = "graphql/assets"  # relative to the page's URL: /graphql -> /graphql/assets/...
MAX_TARBALL_BYTES = 32 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 60.0
IMMUTABLE = "public, max-age=31536000, immutable"  # every URL names its version or hash
GZIP_ABOVE = 1024  # bytes: smaller files are sent as they are
# The page, its own script and stylesheet, and the page shown without the
# files (``{...}`` placeholders: ``str.format``), kept beside this module.
_PAGE_DIR = Path(__file__).with_name("graphiql_page")
MISSING_PAGE = (_PAGE_DIR / "missing.html").read_text(encoding="utf-8")
PAGE = (_PAGE_DIR / "page.html").read_text(encoding="utf-8")
PAGE_STYLESHEET = (_PAGE_DIR / "page.css").read_text(encoding="utf-8")
PAGE_SCRIPT = (_PAGE_DIR / "page.js").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Package:
    """An npm package version and the files taken from its tarball."""

    name: str
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-<base64>"
    files: tuple[tuple[str, str], ...]  # (file name served, its path in the tarball)

    @property
    def folder(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:  # as `npm pack NAME@VERSION` writes it
        return f"{self.name}-{self.version}.tgz"


# GraphiQL 3 is the last major version with UMD builds (4 and 5 are ES modules
# with bare imports); they need React 18's UMD builds, which React 19 no longer ships.
PACKAGES = (
    Package("react", "18.3.1",
            "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
            (("react.production.min.js", "package/umd/react.production.min.js"),
             ("LICENSE", "package/LICENSE"))),
    Package("react-dom", "18.3.1",
            "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
            (("react-dom.production.min.js", "package/umd/react-dom.production.min.js"),
             ("LICENSE", "package/LICENSE"))),
    Package("graphiql", "3.8.3",
            "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
            (("graphiql.min.js", "package/graphiql.min.js"),
             ("graphiql.min.css", "package/graphiql.min.css"),
             ("LICENSE", "package/LICENSE"))),
)
# In the page's order: React, then ReactDOM, then GraphiQL (a UMD build using both).
SCRIPTS = ("react@18.3.1/react.production.min.js", "react-dom@18.3.1/react-dom.production.min.js",
           "graphiql@3.8.3/graphiql.min.js")
STYLESHEETS = ("graphiql@3.8.3/graphiql.min.css",)
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 "": "text/plain; charset=utf-8"}
INSTALL_COMMAND = "credit-gateway graphiql-assets"


class AssetsError(Exception):
    """The assets cannot be fetched or installed: the message says why."""


# ---------------------------------------------------------------- fetching


def _sri(algorithm: str, data: bytes) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def _get(url: str, limit: int, accept: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept,
                                                   "User-Agent": "credit-gateway"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise AssetsError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AssetsError(f"{url}: cannot be fetched ({reason})") from None
    if len(data) > limit:
        raise AssetsError(f"{url}: larger than {limit} bytes")
    return data


def registry_tarball(package: Package, registry: str) -> bytes:
    """``package``'s tarball from the npm registry (or mirror) at ``registry``:
    its metadata (``<registry>/<name>/<version>``) must name the pinned
    integrity, and the tarball it points to must have it."""
    base = registry.rstrip("/")
    url = f"{base}/{urllib.parse.quote(package.name, safe='@')}/{package.version}"
    try:
        metadata = json.loads(_get(url, 4 * 1024 * 1024, "application/json"))
        dist = metadata["dist"]
        integrity, tarball = dist.get("integrity"), dist["tarball"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise AssetsError(f"{url}: not the npm registry's metadata of a package version") from None
    if integrity is not None and integrity != package.integrity:
        raise AssetsError(f"{url}: the registry's {package.folder} has integrity {integrity}, "
                          f"not the pinned {package.integrity}: refused")
    try:
        return _get(tarball, MAX_TARBALL_BYTES, "application/octet-stream")
    except AssetsError:
        # A mirror whose metadata still points to the public registry's address:
        # its own copy is at the conventional path.
        own = f"{base}/{urllib.parse.quote(package.name, safe='@')}/-/{package.tarball_name}"
        if own == tarball:
            raise
        return _get(own, MAX_TARBALL_BYTES, "application/octet-stream")


def _verified(package: Package, data: bytes, where: str) -> bytes:
    if _sri("sha512", data) != package.integrity:
        raise AssetsError(f"{where}: {package.tarball_name} does not match the pinned "
                          f"integrity of {package.folder}: refused")
    return data


def _extract(package: Package, tarball: bytes, where: str) -> dict[str, bytes]:
    """The package's files (by name served) from its verified tarball."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            files = {}
            for name, member_name in package.files:
                member = archive.getmember(member_name)
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise KeyError(member_name)
                files[name] = handle.read()
            return files
    except KeyError as exc:
        raise AssetsError(f"{where}: {package.tarball_name} has no file {exc.args[0]}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AssetsError(f"{where}: {package.tarball_name} is not a readable tarball "
                          f"({exc})") from None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o644)  # public files, read by the gateway's own user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_registry() -> str:
    """npm's registry setting: from the environment, else npm's own
    configuration (``npm config get registry``); ``AssetsError`` when
    neither is there (pass ``--registry``)."""
    configured = next((os.environ[name] for name in REGISTRY_ENVS if os.environ.get(name)), None)
    if configured:
        return configured
    npm = shutil.which("npm")
    if npm:
        try:
            answer = subprocess.run([npm, "config", "get", "registry"], capture_output=True,
                                    text=True, timeout=30, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            answer = ""
        if answer.startswith(("http://", "https://")):
            return answer
    raise AssetsError("no npm registry is configured: pass --registry URL (an npm registry or "
                      "internal mirror), set NPM_CONFIG_REGISTRY, or install npm")


def fetch_assets(directory: str | os.PathLike[str], registry: str | None = None,
                 tarballs: str | os.PathLike[str] | None = None,
                 log: Callable[[str], None] = lambda message: None) -> Path:
    """Install the pinned packages' files into ``directory`` (created if
    absent) from ``registry`` (default: ``$NPM_CONFIG_REGISTRY``, npm's own
    setting, else the public npm registry) or, with ``tarballs``, from the ``.tgz`` files in
    that folder; every tarball is checked against its pinned integrity. The
    manifest is written last, so a failed run leaves the previous state
    served. Returns the manifest's path; raises ``AssetsError``."""
    directory = Path(directory)
    registry = registry or default_registry()
    if directory.exists() and not directory.is_dir():
        raise AssetsError(f"{directory} is not a directory")
    files: dict[str, dict[str, Any]] = {}
    contents: dict[str, bytes] = {}
    for package in PACKAGES:
        if tarballs is not None:
            source = Path(tarballs) / package.tarball_name
            log(f"reading {source}")
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise AssetsError(f"{source}: cannot be read ({exc.strerror})") from None
            where = str(source)
        else:
            log(f"fetching {package.folder} from {registry}")
            data = registry_tarball(package, registry)
            where = registry
        for name, content in _extract(package, _verified(package, data, where), where).items():
            path = f"{package.folder}/{name}"
            contents[path] = content
            files[path] = {"size": len(content), "sha256": _sri("sha256", content)}
    manifest = {"packages": {p.name: {"version": p.version, "integrity": p.integrity}
                             for p in PACKAGES},
                "files": files}
    try:
        for path, content in contents.items():
            _write_atomically(directory / path, content)
        _write_atomically(directory / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        _prune(directory)
    except OSError as exc:
        raise AssetsError(f"{directory}: cannot be written ({exc.strerror or exc})") from None
    return directory / MANIFEST


def _prune(directory: Path) -> None:
    """Remove other versions' folders of the pinned packages (from an upgrade)."""
    pinned = {p.folder for p in PACKAGES}
    for package in PACKAGES:
        for folder in directory.glob(f"{package.name}@*"):
            if folder.is_dir() and folder.name not in pinned:
                for file in folder.iterdir():
                    if file.is_file():
                        file.unlink()
                try:
                    folder.rmdir()
                except OSError:
                    pass


def assets_problem(directory: str | os.PathLike[str] | None) -> str | None:
    """Why ``directory`` cannot serve the pinned GraphiQL (``None``: it can):
    not set, no manifest, other versions, a file missing or of another size."""
    if not directory:
        return "no directory is configured ([gateway] graphiql_assets is empty)"
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        packages, files = manifest["packages"], manifest["files"]
    except FileNotFoundError:
        return f"its directory has no {MANIFEST}: the assets were never fetched there"
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {MANIFEST} cannot be read"
    for package in PACKAGES:
        if not isinstance(packages, dict) or packages.get(package.name) != {
                "version": package.version, "integrity": package.integrity}:
            found = packages.get(package.name) if isinstance(packages, dict) else None
            version = found.get("version") if isinstance(found, dict) else None
            return (f"they are for {package.name} {version or '(none)'}, this gateway needs "
                    f"{package.version}")
        for name, _ in package.files:
            path = f"{package.folder}/{name}"
            entry = files.get(path) if isinstance(files, dict) else None
            try:
                size = (directory / path).stat().st_size
            except OSError:
                return f"{path} is missing"
            if not isinstance(entry, dict) or entry.get("size") != size:
                return f"{path} is not the file the manifest names"
    return None


# ---------------------------------------------------------------- serving


@dataclass(slots=True)
class Asset:
    content_type: str
    sha256: str  # "sha256-<base64>": the ETag and the page's integrity attribute
    path: Path | None = None  # read on first use; None: ``body`` given
    body: bytes | None = None
    gzipped: bytes | None = None


def _own_asset(text: str, suffix: str) -> tuple[str, Asset]:
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()[:12]
    return f"credit-gateway@{digest}/page{suffix}", Asset(CONTENT_TYPES[suffix],
                                                         _sri("sha256", data), body=data)


class Assets:
    """The files served under ``/graphql/assets/``: the page's own script and
    stylesheet (from this module) and the packages' files of ``directory``
    (none when ``assets_problem`` finds one)."""

    def __init__(self, directory: str | os.PathLike[str] | None) -> None:
        self.directory = Path(directory) if directory else None
        self.problem = assets_problem(directory)
        self.script, script = _own_asset(PAGE_SCRIPT, ".js")
        self.stylesheet, stylesheet = _own_asset(PAGE_STYLESHEET, ".css")
        self.files: dict[str, Asset] = {self.script: script, self.stylesheet: stylesheet}
        if self.problem is None and self.directory is not None:
            manifest = json.loads((self.directory / MANIFEST).read_text(encoding="utf-8"))
            for path, entry in manifest["files"].items():
                suffix = Path(path).suffix if Path(path).suffix in CONTENT_TYPES else ""
                self.files[path] = Asset(CONTENT_TYPES[suffix], entry["sha256"],
                                         path=self.directory / path)

    def body(self, name: str, gzipped: bool = False) -> tuple[Asset, bytes] | None:
        """The asset and its bytes (``gzipped``: compressed, if that is worth
        it), checked against the manifest on first read and then kept;
        ``None``: no such asset (or it changed on disk since). The first read
        of a file blocks: ``ready`` says whether it would."""
        asset = self.files.get(name)
        if asset is None:
            return None
        if asset.body is None:
            try:
                data = asset.path.read_bytes()  # type: ignore[union-attr]
            except OSError:
                return None
            if _sri("sha256", data) != asset.sha256:
                return None
            asset.body = data
        if not gzipped or len(asset.body) <= GZIP_ABOVE:
            return asset, asset.body
        if asset.gzipped is None:
            asset.gzipped = gzip.compress(asset.body, compresslevel=6, mtime=0)
        return asset, asset.gzipped

    def ready(self, name: str, gzipped: bool) -> bool:
        asset = self.files.get(name)
        return asset is None or (asset.body is not None and (
            not gzipped or len(asset.body) <= GZIP_ABOVE or asset.gzipped is not None))


def _script_tag(assets: Assets, name: str) -> str:
    return (f'<script src="{ASSETS_PATH}/{html.escape(name)}" '
            f'integrity="{assets.files[name].sha256}"></script>')


def _stylesheet_tag(assets: Assets, name: str) -> str:
    return (f'<link rel="stylesheet" href="{ASSETS_PATH}/{html.escape(name)}" '
            f'integrity="{assets.files[name].sha256}">')


def page_html(assets: Assets, purposes: Iterable[tuple[str, str]] = ()) -> str:
    """The page: GraphiQL over the assets, with the token-and-purpose form
    (``purposes``: the catalog's (code, name) pairs); or, when the assets
    are not there, a page saying how to install them."""
    if assets.problem is not None:
        return MISSING_PAGE.format(problem=html.escape(assets.problem),
                                   command=html.escape(INSTALL_COMMAND))
    options = "".join(f'<option value="{html.escape(code)}">{html.escape(code)} · '
                      f'{html.escape(name)}</option>' for code, name in purposes)
    head = "\n".join([_stylesheet_tag(assets, name) for name in STYLESHEETS]
                     + [_stylesheet_tag(assets, assets.stylesheet)])
    scripts = "\n".join([_script_tag(assets, name) for name in SCRIPTS]
                        + [_script_tag(assets, assets.script)])
    return PAGE.format(head=head, scripts=scripts, options=options)


PAGE_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page_response(page: str) -> Response:
    """The page as a response (never cached without revalidation: it names the
    assets of this gateway's pinned versions)."""
    return HTMLResponse(page, headers=PAGE_SECURITY_HEADERS)


def assets_endpoint(assets: Assets,
                    error: Callable[[Request, int, str, str, dict[str, str] | None], Response]
                    ) -> Callable[[Request], Any]:
    """The ``/graphql/assets/{name:path}`` endpoint over ``assets``; ``error``
    builds the JSON error responses (``gateway.http.error_response``)."""

    async def endpoint(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error(request, 405, "METHOD_NOT_ALLOWED", "GraphiQL's files are read with GET",
                         {"Allow": "GET, HEAD"})
        name = request.path_params.get("name", "")
        gzipped = "gzip" in request.headers.get("accept-encoding", "")
        if assets.ready(name, gzipped):
            found = assets.body(name, gzipped)
        else:  # the first read (and compression) of a file: off the event loop
            found = await run_in_threadpool(assets.body, name, gzipped)
        if found is None:
            return error(request, 404, "NOT_FOUND", "no such GraphiQL file on this gateway", None)
        asset, data = found
        etag = f'"{asset.sha256}"'
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding",
                   "X-Content-Type-Options": "nosniff"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if data is not asset.body:
            headers["Content-Encoding"] = "gzip"
        return Response(data, headers=headers, media_type=asset.content_type)

    return endpoint
