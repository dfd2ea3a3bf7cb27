"""The gateway's schema object, built once per process: the GraphQL types
of ``resolvers`` with the gateway's extensions (admission, purpose-of-use
policy, audit trail)."""

from __future__ import annotations

import logging
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig

from gateway.admission import AdmittedDocument
from gateway.catalog import Catalog
from gateway.compiled import CompiledExecutor
from gateway.enforcement import PurposePolicy
from core.errors import ClientError, SourceError
from gateway.policy import Policy, schema_fields
from gateway.recording import AuditTrail
from gateway.strawberry_internals import graphql_core_schema
from core.masking import MaskedIdentifier
from core.scalars import SCALAR_MAP
from resolvers.entity import RECORD_TYPE
from resolvers.financing import GATES_AUTHORIZATION, PART_RECORD_TYPES
from resolvers.query import Query

log = logging.getLogger("gateway.requests")


INTERNAL_ERROR = "Internal error."


def is_internal(error: GraphQLError) -> bool:
    """Mask errors raised by our own code unless they are meant for clients.
    Syntax, validation and input-coercion errors (no original error, or a
    GraphQL error) describe the client's own request."""
    original = error.original_error
    return original is not None and not isinstance(original, (ClientError, GraphQLError))


def internal_error(request_id: str | None, error: GraphQLError | None = None) -> GraphQLError:
    """What a client sees of an unexpected failure: no message of ours, the
    request id to quote, and where in the response it happened."""
    extensions: dict[str, Any] = {"code": "INTERNAL_SERVER_ERROR"}
    if request_id:
        extensions["requestId"] = request_id
    if error is None:
        return GraphQLError(INTERNAL_ERROR, extensions=extensions)
    return GraphQLError(INTERNAL_ERROR, nodes=error.nodes, source=error.source,
                        positions=error.positions, path=error.path, extensions=extensions)


class GatewaySchema(strawberry.Schema):
    """Logs what clients did wrong or what the policy refused in one line, and
    keeps tracebacks for the errors that are the gateway's own; those reach
    the client as ``Internal error.`` with the request id, wherever they were
    raised (a resolver, the parser's caller, planning, an extension)."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = await super().execute(*args, **kwargs)
        if result.errors and any(is_internal(error) for error in result.errors):
            request_id = getattr(kwargs.get("context_value"), "request_id", None)
            result.errors = [internal_error(request_id, error) if is_internal(error) else error
                             for error in result.errors]
        return result

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        unexpected = []
        for error in errors:
            original = error.original_error
            if isinstance(original, SourceError):
                log.warning("%s at %s: %s", original.code, error.path, original.message)
            elif original is None or isinstance(original, (ClientError, GraphQLError)):
                # The code only: a message may quote the client's values (an ID number).
                code = (error.extensions or {}).get("code") or getattr(original, "code", None)
                log.info("request error at %s: %s", error.path, code or "GRAPHQL_ERROR")
            else:
                unexpected.append(error)
        super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    return GatewaySchema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=CompiledExecutor,
        extensions=[
            AdmittedDocument,
            PurposePolicy,
            AuditTrail,
        ],
    )


schema = build_schema()


def export_sdl() -> str:
    """The SDL kept in ``schema.graphql``."""
    return schema.as_str() + "\n"


def graphql_schema() -> Any:
    """graphql-core's schema behind the strawberry schema (for validation and planning)."""
    return graphql_core_schema(schema)


def _strawberry_fields():
    """(coordinate, strawberry field) for every object-type field of the schema."""
    for coordinate, shape in schema_fields(graphql_schema()).items():
        yield coordinate, schema.get_field_for_type(coordinate.split(".", 1)[1], shape.parent)


def source_record_types() -> dict[str, str]:
    """Coordinates of source-backed fields -> the record type each loads."""
    return {
        coordinate: field.metadata[RECORD_TYPE]
        for coordinate, field in _strawberry_fields()
        if field is not None and RECORD_TYPE in (field.metadata or {})
    }


def source_field_names() -> frozenset[str]:
    """Names of the fields read from a source (``penalties``..., and the
    financing profile's parts): a request's cost."""
    return frozenset(coordinate.split(".", 1)[1] for coordinate in source_record_types()) | {
        *PART_RECORD_TYPES, "indicators"}


def masked_fields() -> set[str]:
    """Coordinates of fields that apply identifier masks."""
    return {
        coordinate for coordinate, field in _strawberry_fields()
        if field is not None and any(isinstance(e, MaskedIdentifier) for e in field.extensions)
    }


def authorization_gates() -> set[str]:
    """Coordinates of fields that check the subject's authorization themselves
    (beside the source-backed fields): the financing profile's parts."""
    return {
        coordinate for coordinate, field in _strawberry_fields()
        if field is not None and (field.metadata or {}).get(GATES_AUTHORIZATION)
    }


def build_policy(catalog: Catalog) -> Policy:
    """The catalog checked against this schema (``ConfigurationError`` if it
    leaves a field undecided or cannot be enforced)."""
    return Policy(catalog, schema_fields(graphql_schema()), source_record_types(), masked_fields(),
                  authorization_gates())
