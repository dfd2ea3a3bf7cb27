"""Log lines: one JSON object per line with the time (ISO 8601, UTC), level,
logger, the request's id, client and purpose, and the message; one access
line per request; and no personal data, whatever the requests about
persons do (sources failing, invalid ID numbers, names where an ID number
belongs, a partner down, an internal error)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator

import pytest

from connectors.base import Connector
from core.config import SourceSettings
from gateway import logs
from tests.connectors.http_server import free_port
from tests.gateway_fixtures import Gateway, demo_token, with_source

SUPERVISOR = ("hz-market-app", "SUPERVISION")
PUBLIC = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
REQUIRED = ("time", "level", "logger", "request_id", "client", "purpose", "message")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
PERSON_QUERY = """query PersonRecord($id: ResidentId!) { person(idNumber: $id) {
  idNumber dishonestDebtorRecords { caseCode subjectName subjectIdNumber }
  legalRepresentativeOf { uscc registration { name legalRepresentative
    legalRepresentativeIdNumber } penalties { decisionNumber } } } }"""


class Captured:
    """The JSON lines written while the fixture is active."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if line]

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    level = root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    capture = Captured()
    handler = logs.configure_logging(stream=capture.stream)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        logs._installed = None
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


def post(gateway: Gateway, query: str, as_=SUPERVISOR, operation_name: str | None = None,
         headers: dict | None = None, **variables):
    request_id = uuid.uuid4().hex
    body = {"query": query, "variables": variables}
    if operation_name is not None:
        body["operationName"] = operation_name
    client_id, purpose = as_
    response = gateway.client.post("/graphql", json=body, headers={
        "Authorization": f"Bearer {demo_token(gateway.settings, client_id)}",
        "X-Purpose-Of-Use": purpose, "X-Request-Id": request_id, **(headers or {})})
    return request_id, response


def assert_no_personal_data(lines: list[str], population) -> None:
    for person in population.persons:
        for line in lines:
            assert person.id_number not in line, line
            assert person.id_number[:17] not in line, line
            assert len(person.name) < 2 or person.name not in line, (person.name, line)


def test_requests_about_persons_log_json_lines_without_personal_data(
        demo_settings, population, tmp_path, monkeypatch, captured):
    from tests.test_federation import with_partners

    empty = tmp_path / "empty-court.db"
    empty.write_bytes(b"")  # opens, but holds no table: the statement itself fails
    down = f"http://127.0.0.1:{free_port()}"  # partner cities that refuse connections
    settings = with_source(with_partners(demo_settings, tmp_path, down, down, retries=0,
                                         breaker_failures=1),
                           "hz-court", url=f"sqlite+aiosqlite:///{empty}")
    debtor = population.person_showcase["person_dishonest_debtor"]
    other = population.persons[1]
    firm = next(e for e in population.enterprises if e.legal_representative == debtor)
    sent = []
    with Gateway(settings) as gateway:
        # the court's database fails; the person's companies are read, and the partners fail
        sent.append(post(gateway, PERSON_QUERY, operation_name="PersonRecord", id=debtor.id_number))
        sent.append(post(gateway, PERSON_QUERY, PUBLIC, id=other.id_number))
        # an ID number with a wrong check digit, a name where an ID number belongs
        sent.append(post(gateway, PERSON_QUERY, id=debtor.id_number[:17] + (
            "0" if debtor.id_number[17] != "0" else "1")))
        sent.append(post(gateway, PERSON_QUERY, id=debtor.name))
        sent.append(post(gateway, '{ person(idNumber: "%s") { idNumber } }' % debtor.name))
        sent.append(post(gateway, '{ person(idNumber: "%s") { idNumber } }' % debtor.id_number))
        sent.append(post(gateway, '{ person(idNumber: "%s" { idNumber } }' % debtor.id_number))
        # an operationName that is no GraphQL name, a purpose that is an ID number
        sent.append(post(gateway, PERSON_QUERY, operation_name=debtor.id_number,
                         id=debtor.id_number))
        sent.append(post(gateway, PERSON_QUERY, ("hz-market-app", debtor.id_number),
                         id=debtor.id_number))
        sent.append(post(gateway, """query($u: USCC!) { entity(uscc: $u) {
            registration { legalRepresentative } penalties { decisionNumber } } }""",
            u=firm.uscc))

        # a bug of ours whose message names the person
        async def broken(record_type, keys, call):
            raise RuntimeError(f"cannot read {keys[0]} ('{debtor.name}')")
        monkeypatch.setattr(gateway.registry.connectors["hz-market"], "load", broken)
        sent.append(post(gateway, PERSON_QUERY, id=debtor.id_number))

    statuses = [response.status_code for _, response in sent]
    assert statuses == [200, 200, 200, 200, 400, 200, 400, 400, 400, 200, 200], statuses
    first = sent[0][1].json()
    assert first["data"]["person"]["legalRepresentativeOf"]  # the companies came back ...
    assert {e["extensions"]["code"] for e in first["errors"]} >= {"SOURCE_UNAVAILABLE"}
    assert "INTERNAL_SERVER_ERROR" in {e["extensions"]["code"] for e in sent[-1][1].json()["errors"]}

    lines = captured.lines()
    assert lines
    assert_no_personal_data(lines, population)
    records = captured.records()
    for record in records:
        assert list(record)[:len(REQUIRED)] == list(REQUIRED), record
        assert ISO_UTC.fullmatch(record["time"]), record["time"]
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

    access = [r for r in records if r["logger"] == logs.ACCESS_LOGGER]
    assert [r["request_id"] for r in access] == [request_id for request_id, _ in sent]
    for record, (_, response) in zip(access, sent, strict=True):
        assert record["event"] == "access"
        assert (record["method"], record["path"], record["status"]) == (
            "POST", "/graphql", response.status_code)
        assert record["latency_ms"] > 0 and record["client"] in ("hz-market-app",
                                                                 "xinyong-huizhou")
        assert record["message"] == f"POST /graphql {response.status_code}"
    assert [r["operation"] for r in access][:3] == ["PersonRecord"] * 3
    assert access[7]["operation"] == "invalid"  # the ID number sent as operationName
    assert access[8]["purpose"] == "[resident-id]"  # ... and as the purpose
    assert [r["outcome"] for r in access] == [
        "partial", "partial", "rejected", "rejected", "rejected", "ok", "rejected",
        "rejected", "rejected", "partial", "partial"]

    # What a request logs carries its id, client and purpose.
    during_first = [r for r in records if r["request_id"] == sent[0][0]]
    loggers = {r["logger"] for r in during_first}
    assert {"gateway.sources", logs.ACCESS_LOGGER} <= loggers
    assert all((r["client"], r["purpose"]) == SUPERVISOR for r in during_first)
    court = [r for r in during_first if r["message"].startswith("source hz-court failed")]
    assert court and "no such table" in court[0]["message"]
    assert all("[parameters" not in r["message"] and "SELECT" not in r["message"]
               for r in court)  # the driver's words, not the statement and its keys
    (bug,) = [r for r in records if r["request_id"] == sent[-1][0] and "exc_info" in r]
    assert "RuntimeError" in bug["exc_info"] and "[resident-id]" in bug["exc_info"]


def test_log_calls_name_no_keys_or_rows(caplog):
    """The connectors' warnings about rows they cannot map name neither the
    key (an ID number) nor the error's text (it may quote the row)."""
    connector = Connector(SourceSettings(id="hz-court", connector="court", url="sqlite://",
                                         department="d", city="c"))
    person_id, name = "44132419800101871X", "张三"

    def build(row):
        raise ValueError(f"unreadable date for {row['name']}")

    rows = [{"key": person_id, "name": name}]
    with caplog.at_level(logging.WARNING, logger="gateway.sources"):
        assert connector.grouped([person_id], rows, lambda r: r["key"], build,
                                 skip_unmappable=True) == [[]]
        with pytest.raises(Exception):
            connector.grouped([person_id], rows, lambda r: r["key"], build)
        with pytest.raises(Exception):
            connector.mapped(rows, build)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all("ValueError" in m for m in messages)
    assert not any(person_id in m or name in m for m in messages)


def test_scrubbing_is_the_last_line_of_defence():
    formatter = logs.GatewayJsonFormatter()
    person_id = "44132419800101871X"

    def line(message, *args, **extra):
        record = logging.LogRecord("gateway.test", logging.WARNING, __file__, 1, message, args,
                                   None)
        record.__dict__.update(extra)
        return formatter.format(record)

    for text in (line("subject %s", person_id), line("subject %s", person_id.lower()),
                 line("keys", keys=[person_id]), line("x", detail={"id": person_id}),
                 line("身份证号%s。", person_id), line("got '张三'; found: \"张三\"")):
        assert person_id not in text.upper() and "张三" not in text, text
        json.loads(text)
    assert "[resident-id]" in line("subject %s", person_id)
    # Neither a USCC nor a longer number is an ID number; ASCII quoted text stays.
    assert "91441323UXDYH5LN1L" in line("entity %s", "91441323UXDYH5LN1L")
    assert "1234567890123456789012" in line("n %s", "1234567890123456789012")
    assert "'text/html'" in line("content type %r", "text/html")
    assert logs.scrub(f"subject {person_id}: got '张三'") == "subject [resident-id]: got '[value]'"
    parsed = json.loads(line("hello"))
    assert parsed["request_id"] is None and parsed["message"] == "hello"


def test_the_request_context_reaches_every_line_of_a_request(captured):
    log = logging.getLogger("gateway.test")
    info = logs.RequestInfo("req-00000001", "POST", "/graphql", client="bank-hzrcb",
                            purpose="FINANCING")
    token = logs.current_request.set(info)
    try:
        log.info("inside")
    finally:
        logs.current_request.reset(token)
    log.info("outside")
    inside, outside = captured.records()
    assert (inside["request_id"], inside["client"], inside["purpose"]) == (
        "req-00000001", "bank-hzrcb", "FINANCING")
    assert (outside["request_id"], outside["client"], outside["purpose"]) == (None, None, None)


def test_uvicorn_log_config_uses_the_same_lines(capsys):
    import logging.config

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logs.uvicorn_log_config())
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
        logging.getLogger("uvicorn.access").warning('127.0.0.1 - "GET /graphql?q=x" 200')
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x]
    assert (line["logger"], line["level"]) == ("uvicorn.error", "WARNING")
    assert line["message"] == "Invalid HTTP request received."


def test_serve_configures_json_logs(monkeypatch):
    """``credit-gateway serve`` sets the JSON lines up and keeps uvicorn's own
    logging configuration (and its access log) out."""
    import uvicorn

    from gateway import cli

    configured, configs = [], []
    monkeypatch.setattr(logs, "configure_logging", lambda *a, **k: configured.append(1))

    class Server:
        def __init__(self, config):
            configs.append(config)

        async def serve(self):
            return None

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(uvicorn, "Config", lambda app, **kwargs: kwargs)
    monkeypatch.setattr("gateway.app.create_app", lambda settings: object())
    monkeypatch.setattr("gateway.settings.load_settings", lambda path: None)
    assert cli.serve("gateway.toml", "127.0.0.1", 0, partners=[("p", object(), 0)]) == 0
    assert configured == [1]
    assert all(c["log_config"] is None and c["access_log"] is False for c in configs)
