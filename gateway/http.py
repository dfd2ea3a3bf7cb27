"""GraphQL over HTTP at ``/graphql`` (graphql.github.io/graphql-over-http).

One ``POST`` with a JSON object ``{"query", "variables", "operationName",
"extensions"}``, or, for a persisted operation (``gateway.operations``),
``{"documentId": "sha256:<hex>", "variables", "operationName", "extensions"}``
(the persisted-documents appendix of the specification): the stored text is
then admitted and run exactly as if the client had sent it, so every limit,
the policy and the audit trail apply unchanged (the audit record names the
operation). Queries over ``GET`` are not served (the GraphiQL page is, where
enabled, to a browser asking for HTML). In order, cheapest first:

==========================================  ======  ===========================
what                                        status  ``errors[0].extensions.code``
==========================================  ======  ===========================
another method (or GET without the IDE)     405     ``METHOD_NOT_ALLOWED`` (``Allow: POST``)
``Accept`` names no type we answer in       406     ``NOT_ACCEPTABLE``
a body that is not ``application/json``     415     ``UNSUPPORTED_MEDIA_TYPE``
a body over ``max_body_bytes``              413     ``REQUEST_TOO_LARGE`` (not read further)
no/bad token, purpose...                    4xx     see ``gateway.caller``
JSON that is not a GraphQL request          400     ``BAD_REQUEST`` (also: both ``query`` and
                                                    ``documentId``, a malformed ``documentId``)
text from a ``persisted_only`` client       403     ``PERSISTED_OPERATION_REQUIRED``
a ``documentId`` the client may not run     400     ``PERSISTED_OPERATION_NOT_FOUND`` (unknown, or
                                                    another client's: not told apart)
a limit of ``gateway.admission``            400     the limit's code, with ``limit``
a document that does not parse / validate   400     ``GRAPHQL_PARSE_FAILED`` / ``..._VALIDATION_FAILED``
over the client's rate limits               429     ``RATE_LIMITED`` (``Retry-After``; see
                                                    ``gateway.limits``), or 503
                                                    ``RATE_LIMIT_UNAVAILABLE``
==========================================  ======  ===========================

Responses are ``application/graphql-response+json`` unless the client
accepts only ``application/json``; then request errors (the last two rows)
answer 200, as the specification says for that type (so does
``PERSISTED_OPERATION_NOT_FOUND``). A request error's body holds no
``data``. Every response carries ``X-Request-Id``; the refusals before the
caller is identified (405, 406, 415, 413), those of the operation's name
and a 500 also name it in ``extensions.requestId`` (an IDE shows the body).
The two refusals of persisted operations are recorded in the audit trail as
security events, like the caller's. What the endpoint does not answer
(another path: 404 ``NOT_FOUND``; another method of another route: 405; a
crash outside it: 500) is coded JSON with the request id too
(``http_error``, ``internal_error``), never Starlette's plain text.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.admission import Admission, Admitted, Refused
from gateway.caller import PURPOSE_HEADER, Caller, CallerIdentifier, RequestRejected, echoed
from gateway.graphiql import page_response
from gateway.operations import Operation, OperationStore, is_document_id
from gateway.limits import RateLimiter
from gateway.recording import AuditRecorder
from gateway import metrics, tracing
from gateway.logs import RequestInfo, access, current_request, note_caller, note_operation

log = logging.getLogger("gateway.requests")

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
REQUEST_ID_HEADER = "X-Request-Id"
INTERNAL_ERROR = "Internal error."
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")

# (request, caller, request id, response status and headers, the admitted
# request, perf_counter() at arrival, the persisted operation run or None)
# -> the request's context
ContextFactory = Callable[[Request, Caller, str, Response, Admitted, float, Operation | None], Any]
# Refusals of an identified caller recorded as security events (as the caller's are).
RECORDED_REFUSALS = frozenset({"PERSISTED_OPERATION_REQUIRED", "PERSISTED_OPERATION_NOT_FOUND"})
# Refusals whose body names the request id too (an IDE shows the body, not the headers).
WITH_REQUEST_ID = frozenset({"OPERATION_NAME_REQUIRED", "UNKNOWN_OPERATION_NAME"})


def _accepted_type(accept: str | None) -> str | None:
    """The response media type for an ``Accept`` header (``None``: none we serve)."""
    if not accept:
        return GRAPHQL_RESPONSE
    ranges = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    if ranges & {GRAPHQL_RESPONSE, "*/*", "application/*"}:
        return GRAPHQL_RESPONSE
    if JSON in ranges:
        return JSON
    return None


def _refusal(status: int, code: str, message: str, media_type: str = GRAPHQL_RESPONSE,
             headers: dict[str, str] | None = None, **extensions: Any) -> Response:
    response = RequestRejected(status, code, message, headers, **extensions).response(media_type)
    setattr(response, metrics.REFUSAL_CODE, code)  # for the metrics and the access log
    return response


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or ``BodyTooLarge`` as soon as it passes ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class GraphQLEndpoint:
    """The ASGI endpoint: refuses what it must (table above), identifies the
    caller, resolves a ``documentId`` through ``operations`` (``None``: no
    persisted operations), admits the document and executes it through
    ``schema`` with the context ``make_context`` builds (which gets the
    admitted document)."""

    def __init__(self, schema: Any, admission: Admission, identifier: CallerIdentifier,
                 recorder: AuditRecorder, make_context: ContextFactory,
                 introspection_for: Callable[[Caller], bool], graphiql_html: str | None,
                 operations: OperationStore | None = None,
                 limiter: RateLimiter | None = None) -> None:
        self.schema = schema
        self.operations = operations
        self.limiter = limiter  # None: no rate limits (tests of the endpoint alone)
        self.admission = admission
        self.identifier = identifier
        self.recorder = recorder
        self.make_context = make_context
        self.introspection_for = introspection_for
        self.graphiql_html = graphiql_html
        self.max_body_bytes = admission.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        started = time.perf_counter()
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        info = RequestInfo(request_id, request.method, request.url.path)
        token = current_request.set(info)  # the log lines', metrics' and span's request
        try:
            with tracing.request_span(info, request.headers):
                try:
                    response = await self.handle(request, request_id, started)
                except Exception:
                    # Anything unexpected (context, encoding, a bug): logged with its
                    # traceback, answered without a word of ours but the request id.
                    log.exception("request %s failed", request_id)
                    response = _refusal(500, "INTERNAL_SERVER_ERROR", INTERNAL_ERROR,
                                        requestId=request_id)
                response.headers[REQUEST_ID_HEADER] = request_id
                metrics.answered(info, response)
                await response(scope, receive, send)
        finally:
            metrics.request_done(info, started)
            access(info)
            current_request.reset(token)

    async def handle(self, request: Request, request_id: str, started: float) -> Response:
        headers = request.headers
        if request.method == "GET" and self.graphiql_html and "text/html" in headers.get(
                "accept", ""):
            return page_response(self.graphiql_html)
        if request.method != "POST":
            return _refusal(405, "METHOD_NOT_ALLOWED",
                            "send GraphQL requests with POST (GET serves only the GraphiQL page, "
                            "where it is enabled)", headers={"Allow": "POST"},
                            requestId=request_id)
        media_type = _accepted_type(headers.get("accept"))
        if media_type is None:
            return _refusal(406, "NOT_ACCEPTABLE",
                            f"responses are {GRAPHQL_RESPONSE} or {JSON}; Accept names neither",
                            media_type=JSON, requestId=request_id)
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != JSON:
            return _refusal(415, "UNSUPPORTED_MEDIA_TYPE",
                            f"the request body must be {JSON}", media_type, requestId=request_id)
        too_large = _refusal(413, "REQUEST_TOO_LARGE",
                             f"the request body exceeds the limit of {self.max_body_bytes} bytes",
                             media_type, limit=self.max_body_bytes, requestId=request_id)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return too_large

        try:
            caller = await self.identifier.identify(request)
            note_caller(caller.client.id, caller.purpose)
        except RequestRejected as rejected:
            purpose = headers.get(PURPOSE_HEADER)
            note_caller(rejected.client_id, echoed(purpose) if purpose is not None else None,
                        rejected.code)
            await self.recorder.record_refusal(
                request_id, started, rejected.client_id,
                echoed(purpose) if purpose is not None else None,
                rejected.code.lower(), rejected.message,
            )
            return rejected.response(media_type)

        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyTooLarge:
            return too_large
        except ClientDisconnect:
            return _refusal(400, "BAD_REQUEST", "the request body ended early", media_type)
        try:
            graphql_request = _graphql_request(body)
            query, operation_name, persisted = self.document(graphql_request, caller)
            note_operation(persisted.name if persisted is not None else operation_name)
            variables = graphql_request.variables
            with tracing.span("graphql.admit"):
                admitted = self.admission.admit(query, operation_name, variables,
                                                self.introspection_for(caller))
            note_operation(None, admitted.document)
        except Refused as refused:
            # The code, not the message: a parser's message quotes the client's text.
            log.info("request %s refused: %s", request_id, refused.code)
            if refused.code in RECORDED_REFUSALS:
                await self.recorder.record_refusal(request_id, started, caller.client.id,
                                                   caller.purpose, refused.code.lower(),
                                                   refused.message)
            status = refused.status
            if media_type == JSON and status == 400 and refused.code != "BAD_REQUEST":
                status = 200  # a GraphQL request error, for clients of plain JSON (the spec)
            extensions = {k: v for k, v in refused.extensions.items() if k != "code"}
            if refused.code in WITH_REQUEST_ID:
                extensions["requestId"] = request_id
            return _refusal(status, refused.code, refused.message, media_type, **extensions)

        if self.limiter is not None:  # the admitted cost is known; nothing is read yet
            limited = await self.limiter.check(caller, admitted.cost, request_id, started)
            if limited is not None:
                note_caller(caller.client.id, caller.purpose, limited.code)
                return limited.response(media_type)

        status = Response()
        status.status_code = None  # type: ignore[assignment]
        del status.headers["content-length"]
        context = self.make_context(request, caller, request_id, status, admitted, started,
                                    persisted)
        result = await self.schema.execute(query, variables, context_value=context,
                                           operation_name=operation_name)
        metrics.executed(context, result)
        body_data: dict[str, Any] = {}
        request_error = bool(admitted.errors)
        if not request_error:
            body_data["data"] = result.data
        if result.errors:
            body_data["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            body_data["extensions"] = result.extensions
        code = status.status_code or (
            400 if request_error and media_type == GRAPHQL_RESPONSE else 200)
        response = Response(self.encode(body_data), status_code=code, media_type=media_type)
        response.headers.update({k: v for k, v in status.headers.items()
                                 if k.lower() != "content-type"})
        return response


    @staticmethod
    def encode(body: dict[str, Any]) -> bytes:
        return orjson.dumps(body)

    def document(self, graphql_request: GraphQLRequest,
                 caller: Caller) -> tuple[str, str | None, Operation | None]:
        """(text, operation name, persisted operation or ``None``) to admit for
        the request, or ``Refused``: a text from a persisted-only client, a
        ``documentId`` the client may not run (the same refusal whether or not
        it exists for another client), an ``operationName`` the stored
        document does not hold."""
        client = caller.client
        if graphql_request.query is not None:
            if client.persisted_only:
                raise Refused("PERSISTED_OPERATION_REQUIRED",
                              f"client {client.id!r} may run only persisted operations: send "
                              f"a `documentId` instead of a `query`", status=403)
            return graphql_request.query, graphql_request.operation_name, None
        document_id = graphql_request.document_id
        operation = None if self.operations is None else self.operations.lookup(
            document_id, client.id)
        if operation is None:
            raise Refused("PERSISTED_OPERATION_NOT_FOUND",
                          f"no persisted operation {document_id} for this client")
        name = graphql_request.operation_name
        if name and name not in (operation.name, operation.operation_name):
            raise Refused("UNKNOWN_OPERATION_NAME", f'Unknown operation named "{echoed(name)}".')
        return operation.document, operation.operation_name, operation


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """A request body's parameters: exactly one of ``query`` and ``document_id``."""

    query: str | None
    document_id: str | None
    variables: dict[str, Any]
    operation_name: str | None


def _graphql_request(body: bytes) -> GraphQLRequest:
    """The parameters of a request body, or ``Refused``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused("BAD_REQUEST", "the request body is not valid JSON") from None
    if isinstance(data, list):
        raise Refused("BAD_REQUEST", "batched requests are not supported: send one object")
    if not isinstance(data, dict):
        kind = {str: "a string", type(None): "null", bool: "a boolean", int: "a number",
                float: "a number"}.get(type(data), "not an object")
        raise Refused("BAD_REQUEST", f"the request body must be a JSON object, got {kind}")
    query, document_id = data.get("query"), data.get("documentId")
    if query is not None and document_id is not None:
        raise Refused("BAD_REQUEST", "send either a `query` or a `documentId`, not both")
    if document_id is not None:
        if not is_document_id(document_id):
            raise Refused("BAD_REQUEST", "`documentId` must be `sha256:` followed by the 64 "
                                         "lower-case hex digits of the document's SHA-256, or "
                                         "`view:` followed by the name of a saved view")
    elif not isinstance(query, str) or not query.strip():
        raise Refused("BAD_REQUEST", "the request needs a `query` (a GraphQL document as a "
                                     "string) or the `documentId` of a persisted operation")
    variables = data.get("variables")
    if variables is None:
        variables = {}
    elif not isinstance(variables, dict):
        raise Refused("BAD_REQUEST", "`variables` must be an object or null")
    operation_name = data.get("operationName")
    if operation_name is not None and not isinstance(operation_name, str):
        raise Refused("BAD_REQUEST", "`operationName` must be a string or null")
    extensions = data.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused("BAD_REQUEST", "`extensions` must be an object or null")
    return GraphQLRequest(query, document_id, variables, operation_name)


def error_response(request: Request, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """A coded GraphQL error body with the request id, for what the endpoint
    does not answer itself: unknown paths, GraphiQL's files, a crash outside it."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    response = _refusal(status, code, message, _accepted_type(request.headers.get("accept")) or JSON,
                        headers, requestId=request_id)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


HTTP_ERROR_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route: 404; a route's other methods: 405) as JSON."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else None
    if status == 404:
        message = f"nothing is served at {echoed(request.url.path)}: GraphQL is at /graphql"
    elif status == 405:
        message = (f"{echoed(request.method)} is not served at {echoed(request.url.path)}: use "
                   f"{(headers or {}).get('Allow', 'another method')}")
    else:
        message = exc.detail if isinstance(exc, HTTPException) else INTERNAL_ERROR
    return error_response(request, status, HTTP_ERROR_CODES.get(status, "BAD_REQUEST"), message,
                          headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """An exception outside the endpoint (which answers its own): a coded 500, no detail
    (the server logs the traceback: Starlette raises the exception on after this)."""
    return error_response(request, 500, "INTERNAL_SERVER_ERROR", INTERNAL_ERROR)


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is a plausible one, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex
