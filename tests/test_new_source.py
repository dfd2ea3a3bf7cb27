"""A new source is a module of its own: a throwaway department is plugged
into a copy of the production packages, served end to end, then removed.

The copy (``core``, ``connectors``, ``resolvers``, ``gateway``) lives in
``tmp_path``; the only files written into it are the new source's two
modules, laid out as the real departments are (record type in
``core/records/``, connector in ``connectors/``). Its catalog entries go into
a policy file of the test's own (the packaged catalog plus one item) and its
database into a configuration of the test's own (the session's demo sources
plus the throwaway one). A subprocess whose ``PYTHONPATH`` is the copy builds
the gateway and asks it; the test checks that this process imported the
copy, not ``/work/main``, and that no file of the copy but the new modules
differs from the tree it was copied from.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.gateway_fixtures import demo_token

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "connectors", "resolvers", "gateway")
SOURCE_ID = "hz-throwaway"
DEPARTMENT = "惠州市临时测试局"
FIELD = "throwawayNotices"
TYPE = "ThrowawayNotice"
RECORD_TYPE = "throwaway_notices"

RECORDS_MODULE = "core/records/throwaway.py"
RECORDS_SOURCE = '''\
"""A throwaway department (临时测试局): notices about organizations."""

from __future__ import annotations

from datetime import date

import strawberry

from core.records.base import CreditRecord, Key, RecordType


@strawberry.type(description="A notice of the throwaway department (临时通知).")
class ThrowawayNotice(CreditRecord):
    reference: str = strawberry.field(description="The notice's number (文号).")
    issued_on: date
    note: str


THROWAWAY_NOTICES = RecordType(
    "throwaway_notices", ThrowawayNotice, field="throwawayNotices",
    fields={Key.USCC: "Notices of the throwaway department, newest first."},
)
'''

CONNECTOR_MODULE = "connectors/throwaway.py"
CONNECTOR_SOURCE = '''\
"""Throwaway department (惠州市临时测试局): notices.

Legacy schema: ``LS_TZGG`` 通知公告: ``TYDM`` USCC (key), ``WH`` notice
number, ``FBRQ`` issued on (ISO ``YYYY-MM-DD`` text), ``NR`` content.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from connectors.base import serves
from connectors.legacy import iso_date
from connectors.sql import SqlConnector, by_keys
from core.records.throwaway import THROWAWAY_NOTICES, ThrowawayNotice

metadata = sa.MetaData()

notices = sa.Table(
    "LS_TZGG",
    metadata,
    sa.Column("ID", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("TYDM", sa.String(18), nullable=False, index=True),
    sa.Column("WH", sa.String(50), nullable=False),
    sa.Column("FBRQ", sa.String(10), nullable=False),
    sa.Column("NR", sa.String(200), nullable=False),
)

_NOTICES = by_keys(notices, notices.c.TYDM, notices.c.FBRQ.desc(), notices.c.ID)


class ThrowawayConnector(SqlConnector):
    """Notices keyed by USCC, newest first."""

    kind = "throwaway"

    @serves(THROWAWAY_NOTICES)
    async def load_throwaway_notices(self, usccs: Sequence[str]) -> list[list[ThrowawayNotice]]:
        rows = await self.fetch(_NOTICES, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.TYDM,
            lambda row: ThrowawayNotice(
                reference=row.WH, issued_on=iso_date(row.FBRQ), note=row.NR,
                provenance=provenance,
            ),
        )
'''
NEW_MODULES = {RECORDS_MODULE: RECORDS_SOURCE, CONNECTOR_MODULE: CONNECTOR_SOURCE}

# The catalog entries: every field of the new type and the new Entity field,
# and the data category a bank needs the enterprise's authorization for.
CATALOG_ITEM = f'''
[items.{RECORD_TYPE}]
name = "临时测试局通知"
class = "government_shared"
purposes = ["LICENSING_REVIEW", "SUPERVISION", "CREDIT_REPAIR_REVIEW"]
authorized_purposes = ["FINANCING"]
authorization_category = "throwaway"
fields = [
  "Entity.{FIELD}",
  "{TYPE}.reference", "{TYPE}.issuedOn", "{TYPE}.note", "{TYPE}.provenance",
]

[categories.throwaway]
name = "临时测试局信息"
authorization_codes = ["LS"]
'''

# Run in the subprocess: imports whatever PYTHONPATH holds, builds the app
# from the configuration, and prints one JSON document.
DRIVER = '''\
import dataclasses
import json
import sys
from collections import Counter

from starlette.testclient import TestClient

import connectors
import core
import gateway
import resolvers
from connectors import CONNECTORS, RECORD_TYPES
from core.errors import ConfigurationError
from gateway.app import create_app
from gateway.catalog import load_catalog
from gateway.schema import build_policy, export_sdl
from gateway.settings import load_settings
from gateway.sources import SourceRegistry

args = json.loads(open(sys.argv[1], encoding="utf-8").read())
out = {
    "files": {m.__name__: m.__file__ for m in (connectors, core, gateway, resolvers)},
    "kinds": sorted(CONNECTORS),
    "record_types": list(RECORD_TYPES),
    "sdl": export_sdl(),
}
try:  # the packaged catalog alone, with whatever modules this tree has
    build_policy(load_catalog(None))
    out["packaged_catalog"] = "ok"
except ConfigurationError as exc:
    out["packaged_catalog"] = str(exc)

settings = load_settings(args["config"], env={})
out["sources"] = [s.id for s in settings.sources]
others = dataclasses.replace(
    settings, sources=tuple(s for s in settings.sources if s.id != args["source_id"]))
try:  # the configuration without the throwaway source
    SourceRegistry.from_settings(others)
    out["without_source"] = "ok"
except ConfigurationError as exc:
    out["without_source"] = str(exc)

registry = SourceRegistry.from_settings(settings)
def statements():
    return Counter({source_id: getattr(connector, "statements_sent", 0)
                    for source_id, connector in registry.connectors.items()})

out["responses"] = {}
with TestClient(create_app(settings, registry)) as client:
    ready = client.get("/readyz")
    out["ready"] = {"status": ready.status_code, "body": ready.json()}
    for name, ask in args["queries"].items():
        before = statements()
        response = client.post(
            "/graphql", json={"query": ask["query"], "variables": ask["variables"]},
            headers={"Authorization": "Bearer " + ask["token"], "X-Purpose-Of-Use": ask["purpose"]})
        out["responses"][name] = {"status": response.status_code, "body": response.json(),
                                  "statements": dict(statements() - before)}
print(json.dumps(out, ensure_ascii=False))
'''

ENTITIES = """
query Notices($usccs: [USCC!]!) {
  entities(usccs: $usccs) {
    uscc
    registration { name }
    throwawayNotices { reference issuedOn note provenance { source department city } }
  }
}
"""
ONE_ENTITY = """
query Notices($uscc: USCC!) {
  entity(uscc: $uscc) { registration { name } throwawayNotices { reference } }
}
"""
TRAIL = """
query Trail($subject: String!, $uscc: USCC!) {
  auditTrail(subject: $subject) { records { clientId purpose released denied sources outcome } }
  entity(uscc: $uscc) {
    accessHistory { events { organization purpose { code } categories outcome } }
  }
}
"""
REGISTRATION_ONLY = """
query Registration($uscc: USCC!) { entity(uscc: $uscc) { registration { name } } }
"""


def copy_tree(destination: Path) -> dict[str, str]:
    """Copy the production packages (sources and data files, no bytecode)
    into ``destination``; the SHA-256 of every file copied, by relative path,
    as read from the tree (others edit it meanwhile: a file is read once)."""
    digests = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = path.relative_to(ROOT).as_posix()
            data = path.read_bytes()
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            digests[relative] = hashlib.sha256(data).hexdigest()
    return digests


def tree_files(tree: Path) -> dict[str, str]:
    """SHA-256 by relative path of every file under ``tree`` but bytecode."""
    return {
        path.relative_to(tree).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(tree.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def config_text(settings, sources: list[tuple[str, str, str, str, str]], audit_url: str,
                policy_file: str) -> str:
    """A configuration serving ``sources`` (id, connector, url, department, city)
    with the demo's issuer and clients, its own audit trail and catalog."""
    lines = [
        "[gateway]", f"policy_file = {toml_string(policy_file)}", "",
        "[auth]",
        f"issuer = {toml_string(settings.auth.issuer)}",
        f"audience = {toml_string(settings.auth.audience)}",
        f"jwks_file = {toml_string(settings.auth.jwks_file)}",
        f"clients_file = {toml_string(settings.auth.clients_file)}", "",
        "[audit]", f"url = {toml_string(audit_url)}",
        f"subject_key = {toml_string(settings.audit.subject_key)}", "",
    ]
    for source_id, connector, url, department, city in sources:
        lines += [f"[sources.{source_id}]", f"connector = {toml_string(connector)}",
                  f"url = {toml_string(url)}", f"department = {toml_string(department)}",
                  f"city = {toml_string(city)}", ""]
    return "\n".join(lines)


def run_gateway(tree: Path, work: Path, name: str, config: Path, queries: dict) -> dict:
    """Run the driver on ``tree`` with ``config`` in a fresh interpreter."""
    driver = work / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    arguments = work / f"{name}.json"
    arguments.write_text(json.dumps({"config": str(config), "source_id": SOURCE_ID,
                                     "queries": queries}, ensure_ascii=False), encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CREDIT_GATEWAY_")}
    env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", PYTHONSAFEPATH="1")
    done = subprocess.run([sys.executable, str(driver), str(arguments)], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return json.loads(done.stdout)


def legacy_database(path: Path, rows: list[tuple[str, str, str, str]]) -> str:
    """The throwaway department's SQLite file, in its own legacy layout."""
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE "LS_TZGG" ("ID" INTEGER PRIMARY KEY AUTOINCREMENT, '
                   '"TYDM" VARCHAR(18) NOT NULL, "WH" VARCHAR(50) NOT NULL, '
                   '"FBRQ" VARCHAR(10) NOT NULL, "NR" VARCHAR(200) NOT NULL)')
        db.execute('CREATE INDEX "ix_LS_TZGG_TYDM" ON "LS_TZGG" ("TYDM")')
        db.executemany('INSERT INTO "LS_TZGG" ("TYDM", "WH", "FBRQ", "NR") VALUES (?, ?, ?, ?)',
                       rows)
    db.close()
    return f"sqlite+aiosqlite:///{path}"


def test_a_new_source_is_served_from_its_own_modules_and_removed(
        tmp_path, demo_settings, population):
    tree, work = tmp_path / "tree", tmp_path / "work"
    work.mkdir()
    copied = copy_tree(tree)
    assert not set(NEW_MODULES) & set(copied), "the tree already has a throwaway source"
    for relative, text in NEW_MODULES.items():
        (tree / relative).write_text(text, encoding="utf-8")

    with_notices, without_notices = (e.uscc for e in population.enterprises[:2])
    url = legacy_database(work / "throwaway.db", [
        (with_notices, "惠临通〔2026〕1号", "2026-03-01", "第一份通知"),
        (with_notices, "惠临通〔2026〕7号", "2026-09-15", "第二份通知"),
        ("91441300000000000X", "惠临通〔2026〕9号", "2026-10-01", "别家的通知"),
    ])
    packaged = (tree / "gateway" / "policy.toml").read_text(encoding="utf-8")
    policy = work / "policy.toml"
    policy.write_text(packaged + CATALOG_ITEM, encoding="utf-8")
    demo_sources = [(s.id, s.connector, s.url, s.department, s.city)
                    for s in demo_settings.sources]
    config = work / "with-source.toml"
    config.write_text(config_text(
        demo_settings, [*demo_sources, (SOURCE_ID, "throwaway", url, DEPARTMENT, "惠州")],
        f"sqlite+aiosqlite:///{work / 'audit-1.db'}", str(policy)), encoding="utf-8")

    supervisor = demo_token(demo_settings, "hz-market-app")
    public = demo_token(demo_settings, "xinyong-huizhou")
    out = run_gateway(tree, work, "with-source", config, {
        "allowed": {"query": ENTITIES, "variables": {"usccs": [with_notices, without_notices]},
                    "token": supervisor, "purpose": "SUPERVISION"},
        "denied": {"query": ONE_ENTITY, "variables": {"uscc": with_notices},
                   "token": public, "purpose": "PUBLIC_DISCLOSURE"},
        "unauthorized": {"query": ONE_ENTITY, "variables": {"uscc": with_notices},
                         "token": demo_token(demo_settings, "bank-icbc-huizhou"),
                         "purpose": "FINANCING"},
        "trail": {"query": TRAIL, "variables": {"subject": with_notices, "uscc": with_notices},
                  "token": demo_token(demo_settings, "hz-credit-auditor"), "purpose": "AUDIT"},
    })

    # The copy was imported, not /work/main (nor the editable install's finder).
    for package, path in out["files"].items():
        assert Path(path).resolve() == (tree / package / "__init__.py").resolve(), (package, path)
    # Discovered from the module alone; the gateway needed its catalog entry
    # and its configured source to start.
    assert "throwaway" in out["kinds"] and RECORD_TYPE in out["record_types"]
    assert f"Entity.{FIELD}" in out["packaged_catalog"], out["packaged_catalog"]
    assert RECORD_TYPE in out["without_source"], out["without_source"]
    assert out["sources"] == [*(s.id for s in demo_settings.sources), SOURCE_ID]

    sdl = out["sdl"]
    assert f"type {TYPE} implements CreditRecord {{" in sdl
    assert f"  {FIELD}: [{TYPE}!]\n" in sdl
    assert '"""Notices of the throwaway department, newest first."""' in sdl

    assert out["ready"]["status"] == 200, out["ready"]
    assert out["ready"]["body"]["sources"][SOURCE_ID] == "ok", out["ready"]

    allowed = out["responses"]["allowed"]
    assert allowed["status"] == 200 and "errors" not in allowed["body"], allowed
    first, second = allowed["body"]["data"]["entities"]
    assert first["uscc"] == with_notices and first["registration"]["name"]
    provenance = {"source": SOURCE_ID, "department": DEPARTMENT, "city": "惠州"}
    assert first[FIELD] == [
        {"reference": "惠临通〔2026〕7号", "issuedOn": "2026-09-15", "note": "第二份通知",
         "provenance": provenance},
        {"reference": "惠临通〔2026〕1号", "issuedOn": "2026-03-01", "note": "第一份通知",
         "provenance": provenance},
    ]
    assert second["uscc"] == without_notices and second[FIELD] == []
    assert allowed["statements"][SOURCE_ID] == 1, allowed["statements"]  # one batch, two keys

    denied = out["responses"]["denied"]
    assert denied["status"] == 200, denied
    assert denied["body"]["data"]["entity"]["registration"]["name"]
    assert denied["body"]["data"]["entity"][FIELD] is None
    [error] = denied["body"]["errors"]
    assert error["path"] == ["entity", FIELD]
    assert error["extensions"]["code"] == "FORBIDDEN_FOR_PURPOSE"
    assert error["extensions"]["purpose"] == "PUBLIC_DISCLOSURE"
    assert denied["statements"].get("hz-market", 0) >= 1  # the request was served ...
    assert SOURCE_ID not in denied["statements"]  # ... without reading the throwaway source

    # A bank needs the enterprise's authorization of the new category (code
    # LS, which no authorization record of the demo's credit office holds).
    unauthorized = out["responses"]["unauthorized"]
    assert unauthorized["status"] == 200, unauthorized
    assert unauthorized["body"]["data"]["entity"][FIELD] is None
    [error] = unauthorized["body"]["errors"]
    assert error["path"] == ["entity", FIELD]
    assert error["extensions"] == {
        "code": "FORBIDDEN_FOR_PURPOSE", "purpose": "FINANCING",
        "reason": "NO_SUBJECT_AUTHORIZATION", "field": f"Entity.{FIELD}"}
    assert unauthorized["statements"].get("hz-credit", 0) >= 1  # its authorizations read ...
    assert SOURCE_ID not in unauthorized["statements"]  # ... the throwaway source not

    # The audit trail and the enterprise's access history name the new item.
    trail = out["responses"]["trail"]
    assert trail["status"] == 200 and "errors" not in trail["body"], trail
    bank_read, public_read, supervisor_read = trail["body"]["data"]["auditTrail"]["records"]
    assert supervisor_read["purpose"] == "SUPERVISION" and supervisor_read["outcome"] == "ok"
    assert f"Entity.{FIELD}" in supervisor_read["released"]
    assert SOURCE_ID in supervisor_read["sources"]
    assert public_read["denied"] == [f"Entity.{FIELD}"]
    assert SOURCE_ID not in public_read["sources"]
    assert bank_read["denied"] == [f"Entity.{FIELD}"] and SOURCE_ID not in bank_read["sources"]
    events = trail["body"]["data"]["entity"]["accessHistory"]["events"]  # newest first
    assert ["临时测试局通知" in event["categories"] for event in events] == [False, False, True]

    # Nothing but the new modules was written into the copy.
    assert tree_files(tree) == {**copied, **{
        relative: hashlib.sha256(text.encode()).hexdigest()
        for relative, text in NEW_MODULES.items()}}

    # Removed: the modules, the catalog entry (the packaged catalog again) and the source.
    for relative in NEW_MODULES:
        (tree / relative).unlink()
    config = work / "without-source.toml"
    config.write_text(config_text(demo_settings, demo_sources,
                                  f"sqlite+aiosqlite:///{work / 'audit-2.db'}", ""),
                      encoding="utf-8")
    out = run_gateway(tree, work, "without-source", config, {
        "registration": {"query": REGISTRATION_ONLY, "variables": {"uscc": with_notices},
                         "token": supervisor, "purpose": "SUPERVISION"},
        "gone": {"query": ONE_ENTITY, "variables": {"uscc": with_notices},
                 "token": supervisor, "purpose": "SUPERVISION"},
    })
    for package, path in out["files"].items():
        assert Path(path).resolve() == (tree / package / "__init__.py").resolve(), (package, path)
    assert "throwaway" not in out["kinds"] and RECORD_TYPE not in out["record_types"]
    assert "throwaway" not in out["sdl"].lower() and TYPE not in out["sdl"]
    assert out["packaged_catalog"] == "ok" and out["without_source"] == "ok"
    assert out["sources"] == [s.id for s in demo_settings.sources]
    assert out["ready"]["status"] == 200 and SOURCE_ID not in out["ready"]["body"]["sources"]

    registration = out["responses"]["registration"]
    assert registration["status"] == 200 and "errors" not in registration["body"], registration
    assert registration["body"]["data"]["entity"]["registration"]["name"] == first[
        "registration"]["name"]
    gone = out["responses"]["gone"]
    assert gone["status"] == 400 and gone["body"].get("data") is None, gone
    [error] = gone["body"]["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["message"] == f"Cannot query field '{FIELD}' on type 'Entity'."
    assert gone["statements"] == {}
    assert tree_files(tree) == copied  # the copy is the tree it was copied from again
