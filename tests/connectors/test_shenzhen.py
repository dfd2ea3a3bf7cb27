"""The Shenzhen connector against a real Shenzhen instance of this gateway.

Shenzhen's demo data (``create_demo_data(city="shenzhen")``) is served by a
second gateway app with the demo token endpoint beside it, under uvicorn on
loopback. Shenzhen runs a policy of its own that differs from ours in two
places, so that its refusals can be observed: it does not share penalties
for PROCUREMENT_REVIEW, nor legal representatives' ID numbers for SUPERVISION.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2
import orjson
import pytest
from graphql import FieldNode, OperationDefinitionNode, parse
from joserfc import jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.routing import Mount

from connectors.base import HOP_HEADER, ON_BEHALF_OF_HEADER, SourceCall
from connectors.credit_office import CreditOfficeConnector
from connectors.shenzhen import ShenzhenConnector
from demo.generate import create_demo_data
from demo.issuer import ensure_signing_key
from demo.population import build_population
from demo.token_endpoint import token_route
from gateway.app import create_app
from gateway.audit import AuditStore
from gateway.catalog import DEFAULT_CATALOG, load_catalog
from gateway.clock import china_today
from core.codes import complete_uscc
from core.errors import BadSourceData, PartnerRefused, SourceUnavailable
from gateway.policy import decide
from core.config import SourceSettings
from gateway.settings import Settings, load_settings
from gateway.schema import build_policy
from core.records.credit_office import PENALTIES, Penalty, Severity
from tests.connectors.http_server import LiveServer

pytestmark = pytest.mark.anyio

TODAY = china_today()  # Shenzhen evaluates its row rules on the real date, in China
SIZE, PERSONS = 60, 20
SECRET = "huizhou-gateway-demo-secret"
HUIZHOU_CODE = "91441300195971850Y"
PERSON_ID = "440524188001010014"
ORGANIZATION = "惠州市市场监督管理局"
PENALTY_FIELDS = frozenset(f"Penalty.{name}" for name in (
    "decisionNumber", "subjectName", "violationType", "facts", "legalBasis", "penaltyTypes",
    "fine", "confiscated", "decidedOn", "publicityEndsOn", "severity", "issuingOrgan",
    "issuingOrganCode", "reportingDepartment", "repairedOn",
))


def shenzhen_policy(path: Path) -> Path:
    """Our catalog, less penalties for PROCUREMENT_REVIEW and ID numbers for SUPERVISION."""
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    for item, purpose in (("penalties", "PROCUREMENT_REVIEW"),
                          ("person_penalties", "PROCUREMENT_REVIEW"),
                          ("legal_representative_id", "SUPERVISION")):
        head, _, rest = text.partition(f"[items.{item}]\n")
        line, _, tail = rest.partition("\npurposes = [")
        purposes, _, after = tail.partition("]")
        assert f'"{purpose}"' in purposes
        kept = ", ".join(p for p in purposes.split(", ") if p != f'"{purpose}"')
        text = f"{head}[items.{item}]\n{line}\npurposes = [{kept}]{after}"
    path.write_text(text, encoding="utf-8")
    return path


class Recorder:
    """Records each request to the wrapped app (path, headers, JSON body, status);
    ``canned`` answers the next GraphQL requests instead of the app. Enters the
    app's lifespan on the first request (uvicorn runs with lifespan off) and
    leaves it, on the server's loop, in ``close``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self.canned: list[Any] = []
        self._stack = contextlib.AsyncExitStack()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self._loop is None:
            with self._started:  # one loop: no await while held
                first = self._loop is None
                self._loop = asyncio.get_running_loop()
            if first:
                await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = {
            "path": scope["path"],
            "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            "json": orjson.loads(body) if body else None,
            "status": None,
        }
        self.requests.append(record)
        if self.canned:
            answer = orjson.dumps(self.canned.pop(0))
            record["status"] = 200
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def observe(message: dict) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
            await send(message)

        await self.app(scope, replay, observe)

    def close(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._stack.aclose(), self._loop).result(60)

    def graphql(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/graphql"]


@dataclasses.dataclass
class Shenzhen:
    url: str
    settings: Settings
    recorder: Recorder
    tokens: Counter
    population: Any

    def source(self, **changes: Any) -> SourceSettings:
        """The Huizhou gateway's settings for this partner."""
        values = dict(
            id="sz-gateway", connector="shenzhen", url=f"{self.url}/graphql",
            department="深圳市公共信用中心", city="深圳", divisions=("4403",),
            token_url=f"{self.url}/oauth/token", client_id="huizhou-gateway",
            # a deadline no loaded machine reaches: these tests are not about speed (the
            # first request also starts Shenzhen's gateway: its sources and audit trail)
            client_secret=SECRET, timeout_seconds=60.0, retries=0,
        )
        return SourceSettings(**{**values, **changes})

    def connector(self, **changes: Any) -> ShenzhenConnector:
        return ShenzhenConnector(self.source(**changes))


@pytest.fixture(scope="module")
def shenzhen(tmp_path_factory) -> Iterator[Shenzhen]:
    data_dir = tmp_path_factory.mktemp("shenzhen")
    config = create_demo_data(data_dir, size=SIZE, persons=PERSONS, today=TODAY, city="shenzhen")
    settings = dataclasses.replace(
        load_settings(config, env={}), policy_file=str(shenzhen_policy(data_dir / "policy.toml")),
    )
    key, _ = ensure_signing_key(data_dir)
    tokens: Counter = Counter()
    recorder = Recorder(create_app(settings))
    app = Starlette(routes=[
        token_route(key, issuer=settings.auth.issuer, audience=settings.auth.audience,
                    clients={"huizhou-gateway": SECRET}, counter=tokens),
        Mount("/", recorder),
    ])
    population = build_population(SIZE, PERSONS, today=TODAY, city="shenzhen")
    with LiveServer(app) as server:
        try:
            yield Shenzhen(server.url, settings, recorder, tokens, population)
        finally:
            recorder.close()


def call(purpose: str = "SUPERVISION", selected: frozenset[str] = frozenset(),
         request_id: str = "hz-req-0001") -> SourceCall:
    """A call as Huizhou's loaders make it: with what our policy reads for ``purpose``."""
    return SourceCall(request_id, "hz-market-app", ORGANIZATION, purpose, selected,
                      reads=HUIZHOU_POLICY.decisions[purpose].reads)


HUIZHOU_POLICY = build_policy(load_catalog())


def sub_selection(request: dict[str, Any]) -> tuple[str, set[str]]:
    """The entity field a forwarded query asks for, and the fields under it."""
    (operation,) = parse(request["json"]["query"]).definitions
    assert isinstance(operation, OperationDefinitionNode)
    (entities,) = operation.selection_set.selections
    uscc, field = entities.selection_set.selections
    assert isinstance(field, FieldNode) and uscc.name.value == "uscc"
    return field.name.value, {s.name.value for s in field.selection_set.selections}


def missing_shenzhen_code() -> str:
    return complete_uscc("9144030000000000A")


async def test_registrations_of_shenzhen_codes_come_in_one_request(shenzhen):
    enterprises = shenzhen.population.enterprises[:3]
    missing = missing_shenzhen_code()
    keys = [e.uscc for e in enterprises] + [HUIZHOU_CODE, missing, PERSON_ID]
    connector = shenzhen.connector()
    before = len(shenzhen.recorder.graphql())
    try:
        *found, huizhou, absent, person = await connector.load("registration", 
            keys, call=call(selected=frozenset({"Registration.name", "Registration.status",
                                                "Registration.provenance", "Provenance.city"})))
    finally:
        await connector.aclose()
    sent = shenzhen.recorder.graphql()[before:]
    assert len(sent) == 1
    assert sent[0]["json"]["variables"] == {"u": [e.uscc for e in enterprises] + [missing]}
    assert sub_selection(sent[0]) == ("registration", {"name", "status"})
    assert huizhou is None and absent is None and person is None
    for enterprise, registration in zip(enterprises, found):
        assert registration.name == enterprise.name
        assert registration.status is not None
        assert registration.address is None and registration.uscc is None  # not asked for
        assert registration.provenance.source == "sz-gateway"
        assert registration.provenance.city == "深圳"
        assert registration.provenance.department == "深圳市公共信用中心"


async def test_codes_outside_shenzhen_and_person_ids_cost_no_request(shenzhen):
    connector = shenzhen.connector()
    before = len(shenzhen.recorder.graphql())
    try:
        assert await connector.load("registration", [HUIZHOU_CODE], call=call()) == [None]
        assert await connector.load("penalties", [PERSON_ID], call=call()) == [[]]
        assert await connector.load("dishonest_debtors", [PERSON_ID], call=call()) == [[]]
    finally:
        await connector.aclose()
    assert len(shenzhen.recorder.graphql()) == before


@pytest.mark.parametrize(("load", "purpose", "selected", "expected"), [
    ("penalties", "SUPERVISION",
     {"Penalty.decisionNumber", "Penalty.fine", "Penalty.provenance", "Provenance.city",
      "Registration.name", "Licence.licenceName"},
     {"decisionNumber", "fine", "decidedOn", "severity", "publicityEndsOn", "repairedOn"}),
    ("credit_lists", "JOINT_PUNISHMENT", {"CreditListEntry.listName"},
     {"listName", "removedOn", "expiresOn", "kind"}),
    ("credit_lists", "SUPERVISION", {"CreditListEntry.listName"},
     {"listName", "removedOn", "expiresOn"}),
    ("licences", "SUPERVISION", {"Licence.licenceName", "Penalty.fine"}, {"licenceName"}),
    ("abnormal_operations", "LICENSING_REVIEW", set(), {"removedOn"}),
    ("licences", "LICENSING_REVIEW", {"Licence.provenance"}, {"__typename"}),
])
async def test_forwarded_selection_is_the_selected_fields_plus_row_rule_attributes(
    shenzhen, load, purpose, selected, expected,
):
    uscc = shenzhen.population.showcase["black_list"].uscc
    connector = shenzhen.connector()
    before = len(shenzhen.recorder.graphql())
    try:
        (records,) = await connector.load(load, [uscc], call=call(purpose, frozenset(selected)))
    finally:
        await connector.aclose()
    (sent,) = shenzhen.recorder.graphql()[before:]
    assert sub_selection(sent)[1] == expected
    assert isinstance(records, list)


async def test_every_call_carries_purpose_request_id_organization_and_hop(shenzhen):
    uscc = shenzhen.population.showcase["clean"].uscc
    connector = shenzhen.connector()
    before = len(shenzhen.recorder.graphql())
    try:
        await connector.load("penalties", [uscc], call=call("LICENSING_REVIEW",
                                                         request_id="hz-req-headers-1"))
    finally:
        await connector.aclose()
    (sent,) = shenzhen.recorder.graphql()[before:]
    headers = sent["headers"]
    assert headers["x-purpose-of-use"] == "LICENSING_REVIEW"
    assert headers["x-request-id"] == "hz-req-headers-1"
    assert unquote(headers[ON_BEHALF_OF_HEADER.lower()]) == ORGANIZATION
    assert headers[ON_BEHALF_OF_HEADER.lower()].isascii()
    assert headers[HOP_HEADER.lower()] == "huizhou"
    assert headers["authorization"].startswith("Bearer ")


async def test_penalties_shenzhen_holds_are_mapped_with_shenzhen_provenance(shenzhen):
    keys = [shenzhen.population.showcase[case].uscc
            for case in ("penalty_general_in_window", "penalty_serious_in_window", "clean")]
    connector = shenzhen.connector()
    try:
        general, serious, clean = await connector.load("penalties", 
            keys, call=call("SUPERVISION", PENALTY_FIELDS))
    finally:
        await connector.aclose()
    assert general and serious and clean == []
    assert {p.severity for p in general} == {Severity.GENERAL}
    assert {p.severity for p in serious} == {Severity.SERIOUS}
    for penalty in general + serious:
        assert isinstance(penalty, Penalty)
        assert penalty.provenance.city == "深圳" and penalty.provenance.source == "sz-gateway"

    # The same records as Shenzhen's own credit office holds, after the purpose's row rules.
    office = next(s for s in shenzhen.settings.sources if s.id == "sz-credit")
    direct = CreditOfficeConnector(office)
    try:
        held = await direct.load("penalties", keys[:2], call())
    finally:
        await direct.aclose()
    rows = decide(load_catalog(), "SUPERVISION", {"Entity.penalties": PENALTIES.name})
    expected = [rows.row_filters[PENALTIES.name].apply(records, TODAY)[0] for records in held]

    def comparable(records):
        return sorted((dataclasses.replace(r, provenance=None) for r in records),
                      key=lambda r: r.decision_number)

    assert comparable(general) == comparable(expected[0])
    assert comparable(serious) == comparable(expected[1])


async def test_purpose_reaches_shenzhen_audit_trail(shenzhen):
    uscc = shenzhen.population.showcase["dishonest_debtor"].uscc
    connector = shenzhen.connector()
    try:
        (records,) = await connector.load("dishonest_debtors", 
            [uscc], call=call("JOINT_PUNISHMENT", frozenset({"DishonestDebtorRecord.caseCode"}),
                              request_id="hz-req-audit-1"))
    finally:
        await connector.aclose()
    assert records and all(r.case_code and r.duty is None for r in records)
    store = AuditStore(shenzhen.settings.audit.url)
    try:
        trail = await store.query(client_id="huizhou-gateway", limit=100)
    finally:
        await store.aclose()
    (entry,) = [r.entry for r in trail if r.entry.request_id == "hz-req-audit-1"]
    assert entry.purpose == "JOINT_PUNISHMENT"
    assert entry.subjects == (uscc,)
    assert "DishonestDebtorRecord.caseCode" in entry.released
    assert "DishonestDebtorRecord.duty" not in entry.released


async def test_a_purpose_shenzhen_did_not_grant_is_refused(shenzhen):
    uscc = shenzhen.population.showcase["tax_a"].uscc
    connector = shenzhen.connector()
    before = len(shenzhen.recorder.graphql())
    try:
        with pytest.raises(PartnerRefused) as refused:
            await connector.load("penalties", [uscc], call=call("FINANCING"))
    finally:
        await connector.aclose()
    (sent,) = shenzhen.recorder.graphql()[before:]
    assert sent["headers"]["x-purpose-of-use"] == "FINANCING" and sent["status"] == 403
    assert refused.value.extensions == {"code": "PARTNER_REFUSED", "source": "sz-gateway"}


async def test_the_token_is_fetched_once_and_reused(shenzhen):
    uscc = shenzhen.population.showcase["clean"].uscc
    connector = shenzhen.connector()
    issued = shenzhen.tokens["huizhou-gateway"]
    before = len(shenzhen.recorder.graphql())
    try:
        for _ in range(3):
            await connector.load("licences", [uscc], call=call())
    finally:
        await connector.aclose()
    sent = shenzhen.recorder.graphql()[before:]
    assert len(sent) == 3
    assert len({r["headers"]["authorization"] for r in sent}) == 1
    assert shenzhen.tokens["huizhou-gateway"] == issued + 1


async def test_a_field_shenzhen_nulls_for_the_purpose_is_refused_not_widened(shenzhen):
    penalized = shenzhen.population.showcase["penalty_general_in_window"].uscc
    registered = shenzhen.population.enterprises[0].uscc
    connector = shenzhen.connector()
    try:
        with pytest.raises(PartnerRefused):  # Entity.penalties is null there for the purpose
            await connector.load("penalties", 
                [penalized], call=call("PROCUREMENT_REVIEW", PENALTY_FIELDS))
        with pytest.raises(PartnerRefused):  # a single sub-field nulled: the record type fails
            await connector.load("registration", [registered], call=call(
                "SUPERVISION", frozenset({"Registration.name",
                                          "Registration.legalRepresentativeIdNumber"})))
        (registration,) = await connector.load("registration", 
            [registered], call=call("SUPERVISION", frozenset({"Registration.name"})))
    finally:
        await connector.aclose()
    assert registration.name == shenzhen.population.enterprises[0].name
    assert registration.legal_representative_id_number is None


@pytest.mark.parametrize(("answer", "error"), [
    ({"data": {"entities": [{"uscc": "U", "penalties": None}]},
      "errors": [{"message": "source sz-credit is unavailable", "path": ["entities", 0, "penalties"],
                  "extensions": {"code": "SOURCE_UNAVAILABLE", "source": "sz-credit"}}]},
     SourceUnavailable),
    ({"data": {"entities": "nope"}}, BadSourceData),
    ({"data": None, "errors": [{"message": "boom"}]}, BadSourceData),
    ({"data": {"entities": [{"uscc": "U", "penalties": [{"decisionNumber": 7}]}]}}, BadSourceData),
    ({"data": {"entities": [{"uscc": "U", "penalties": [{"decisionNumber": "X"}]}]}}, None),
    ([1, 2], BadSourceData),
])
async def test_answers_are_checked(shenzhen, answer, error):
    uscc = shenzhen.population.showcase["clean"].uscc
    shenzhen.recorder.canned.append(orjson.loads(orjson.dumps(answer).replace(b'"U"', f'"{uscc}"'.encode())))
    connector = shenzhen.connector()
    try:
        if error is None:
            ((penalty,),) = await connector.load("penalties", 
                [uscc], call=call("CREDIT_REPAIR_REVIEW", frozenset({"Penalty.decisionNumber"})))
            assert penalty.decision_number == "X" and penalty.decided_on is None
        else:
            with pytest.raises(error) as raised:
                await connector.load("penalties", [uscc], call=call("CREDIT_REPAIR_REVIEW",
                                                                frozenset({"Penalty.decisionNumber"})))
            assert type(raised.value) is error
    finally:
        shenzhen.recorder.canned.clear()
        await connector.aclose()


# -- the token endpoint ----------------------------------------------------------


def token_request(shenzhen, *, data: dict[str, str], auth: tuple[str, str] | None = None):
    return httpx2.post(f"{shenzhen.url}/oauth/token", data=data, auth=auth, timeout=60)


def test_token_endpoint_issues_rfc9068_tokens_to_form_authenticated_clients(shenzhen):
    response = token_request(shenzhen, data={
        "grant_type": "client_credentials", "client_id": "huizhou-gateway", "client_secret": SECRET,
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert response.headers["cache-control"] == "no-store"
    jwks = KeySet.import_key_set(orjson.loads(Path(shenzhen.settings.auth.jwks_file).read_bytes()))
    token = jwt.decode(body["access_token"], jwks, algorithms=["RS256"])
    assert token.header["typ"] == "at+jwt"
    assert token.claims["client_id"] == "huizhou-gateway"
    assert token.claims["iss"] == shenzhen.settings.auth.issuer
    assert token.claims["aud"] == shenzhen.settings.auth.audience
    assert token.claims["exp"] - token.claims["iat"] == 600


@pytest.mark.parametrize(("data", "auth", "status", "error"), [
    ({"grant_type": "client_credentials"}, ("huizhou-gateway", "wrong"), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, ("nobody", SECRET), 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "password", "username": "u", "password": "p"},
     ("huizhou-gateway", SECRET), 400, "unsupported_grant_type"),
    ({}, ("huizhou-gateway", SECRET), 400, "invalid_request"),
    ({"grant_type": "client_credentials", "client_secret": SECRET},
     ("huizhou-gateway", SECRET), 400, "invalid_request"),
])
def test_token_endpoint_refuses_bad_clients_and_other_grants(shenzhen, data, auth, status, error):
    issued = sum(shenzhen.tokens.values())
    response = token_request(shenzhen, data=data, auth=auth)
    assert response.status_code == status
    assert response.json()["error"] == error
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")
    assert sum(shenzhen.tokens.values()) == issued
