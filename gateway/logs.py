"""Log lines: one JSON object per line, with the request they belong to.

``configure_logging`` (called by ``credit-gateway serve`` and ``demo``) sends
every logger's records, uvicorn's included, through one handler on the root
logger whose lines look like::

    {"time": "2026-12-02T03:04:05.678Z", "level": "INFO", "logger": "gateway.access",
     "request_id": "6f1c...", "client": "hz-market-app", "purpose": "SUPERVISION",
     "message": "POST /graphql 200", "event": "access", "method": "POST", "path": "/graphql",
     "status": 200, "latency_ms": 12.3, "operation": "Record", "outcome": "ok", "code": null}

``time`` is ISO 8601 in UTC (milliseconds, ``Z``); ``request_id``, ``client`` and
``purpose`` come from the ``RequestInfo`` the HTTP layer (``gateway.http``) keeps
in the ``current_request`` context variable while it serves a request (``null``
outside one, or before the caller is known); other fields passed as ``extra``
follow. The HTTP layer writes one ``gateway.access`` line per GraphQL request
(``access``); uvicorn's own access log stays off (it would repeat query strings).

No personal data: log calls name sources, codes and counts, never the keys
asked about (resident ID numbers) or the records read (names). As a last line
of defence every line is scrubbed before it is written: 18-character resident
ID numbers become ``[resident-id]``, and the values GraphQL error messages quote
from a request (``got '...'``, ``found: "..."``) and any quoted text beyond
ASCII (a name) become ``'[value]'``.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter

ACCESS_LOGGER = "gateway.access"
# Loggers kept to warnings: alembic's migrations, and the HTTP clients' request
# lines (a partner's URL with its query string; gateway.sources logs calls without).
QUIET_LOGGERS = ("alembic", "httpx2", "httpx", "httpcore")
CONTEXT_FIELDS = ("request_id", "client", "purpose")
_OPERATION_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,63}")
# A resident ID number (GB 11643): 17 digits and a check character, not inside a longer
# run of digits or letters (a USCC mixes letters in; a longer number is something else).
RESIDENT_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
# What GraphQL error messages quote from a request (a variable's value, a literal:
# "... got '<value>'; found: '<value>'") ...
_QUOTED_VALUE = re.compile(r"""((?:found|got|value):? )(?:'[^'\n]*'|"[^"\n]*")""")
# ... and any quoted text with a character beyond ASCII (a name, an address).
_QUOTED_TEXT = re.compile(r"'[^'\n]*[^\x00-\x7f][^'\n]*'|\"[^\"\n]*[^\x00-\x7f][^\"\n]*\"")


@dataclass(slots=True)
class RequestInfo:
    """What is known of the request being served, filled in as it is learnt:
    the log lines, the access line, the metrics and the request's span read it.
    ``operation`` is a GraphQL name (``safe_operation_name``), never free text."""

    request_id: str
    method: str = ""
    path: str = ""
    client: str | None = None
    purpose: str | None = None
    operation: str | None = None
    outcome: str | None = None  # gateway.metrics: ok, partial, denied, rejected, error
    code: str | None = None  # the error code of a refusal
    status: int = 0
    latency_ms: float = 0.0
    executed: bool = False  # the operation ran (the schema executed it)


current_request: ContextVar[RequestInfo | None] = ContextVar("credit_gateway_request",
                                                             default=None)


def safe_operation_name(name: Any) -> str | None:
    """``name`` if it is a GraphQL name (ASCII, at most 64 characters), else
    ``"invalid"`` (``None`` for ``None``): an ``operationName`` is the client's
    free text until the document is parsed, and may hold anything."""
    if name is None:
        return None
    if isinstance(name, str) and _OPERATION_NAME.fullmatch(name):
        return name
    return "invalid"


def document_operation_name(document: Any) -> str | None:
    """The name of a document's only operation (``None``: anonymous, or several)."""
    names = [d.name for d in getattr(document, "definitions", ())
             if getattr(d, "operation", None) is not None]
    return names[0].value if len(names) == 1 and names[0] is not None else None


def note_caller(client: str | None, purpose: str | None, code: str | None = None) -> None:
    """The current request's caller (as far as known) and refusal code."""
    info = current_request.get()
    if info is not None:
        info.client, info.purpose = client, purpose
        if code is not None:
            info.code = code


def note_operation(name: str | None, document: Any = None) -> None:
    """The current request's operation: ``name`` (the client's ``operationName``
    or the persisted operation's name), else, once parsed, ``document``'s only one."""
    info = current_request.get()
    if info is not None:
        if name is not None:
            info.operation = safe_operation_name(name)
        elif info.operation is None and document is not None:
            info.operation = document_operation_name(document)


def _unquoted(text: str) -> str:
    """``text`` without values quoted from a request or quoted text beyond ASCII."""
    if "'" in text or '"' in text:
        return _QUOTED_TEXT.sub("'[value]'", _QUOTED_VALUE.sub(r"\1'[value]'", text))
    return text


def scrub(text: str) -> str:
    """``text`` as a log line may show it: without resident ID numbers, values
    quoted from a request, or quoted text beyond ASCII."""
    return RESIDENT_ID.sub("[resident-id]", _unquoted(text))


class RequestContextFilter(logging.Filter):
    """Adds the current request's id, client and purpose to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_request.get()
        for name in CONTEXT_FIELDS:
            if name not in record.__dict__:
                setattr(record, name, getattr(info, name) if info is not None else None)
        return True


class GatewayJsonFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, request id, client,
    purpose, message, then any ``extra`` fields and the exception; scrubbed."""

    def __init__(self) -> None:
        # (uvicorn adds ``color_message``: its message with terminal colours)
        super().__init__(reserved_attrs=[*RESERVED_ATTRS, *CONTEXT_FIELDS, "color_message"],
                         json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        for name in CONTEXT_FIELDS:
            log_data[name] = record.__dict__.get(name)
        log_data["message"] = record.message
        merge_record_extra(record, log_data, reserved=self._skip_fields)
        log_data.update(message_dict)  # exc_info, stack_info

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for key, value in log_data.items():  # quoted values (the ID numbers: below)
            if type(value) is str:
                log_data[key] = _unquoted(value)
        return log_data

    def serialize_log_record(self, log_data: dict[str, Any]) -> str:
        # The ID numbers, once over the whole line: whatever field held them (a
        # message, an exception, a list or a dict passed as ``extra``).
        return RESIDENT_ID.sub("[resident-id]", super().serialize_log_record(log_data))


_installed: logging.Handler | None = None


def configure_logging(level: int | str = logging.INFO, stream: IO[str] | None = None,
                      ) -> logging.Handler:
    """Send every log record, as one JSON line, to ``stream`` (standard error);
    replaces the handler of an earlier call. uvicorn's loggers propagate to
    it (pass ``log_config=None`` to ``uvicorn.Config``, or ``uvicorn_log_config()``
    in a worker process); its access log stays off. Returns the handler."""
    global _installed
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(GatewayJsonFormatter())
    handler.addFilter(RequestContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    _installed = handler
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")  # off: the access lines are ours
    access.handlers[:] = [logging.NullHandler()]
    access.propagate = False
    return handler


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``uvicorn.Config(log_config=...)``:
    the same JSON lines in every process uvicorn starts (``--workers``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContextFilter}},
        "formatters": {"json": {"()": GatewayJsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "json", "filters": ["request"]},
                     "null": {"class": "logging.NullHandler"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": ["null"], "propagate": False},  # ours instead
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


_access = logging.getLogger(ACCESS_LOGGER)


def access(info: RequestInfo) -> None:
    """The request's access line (``gateway.access``, INFO)."""
    if _access.isEnabledFor(logging.INFO):
        _access.info("%s %s %s", info.method, info.path, info.status, extra={
            "event": "access", "method": info.method, "path": info.path,
            "status": info.status, "latency_ms": info.latency_ms,
            "operation": info.operation, "outcome": info.outcome, "code": info.code,
        })
