"""The gateway's schema object, built once per process."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig

from gateway.errors import ClientError
from resolvers.query import Query
from resolvers.scalars import SCALAR_MAP


def is_internal(error: GraphQLError) -> bool:
    """Mask errors raised by our own code unless they are meant for clients.
    Syntax, validation and input-coercion errors (no original error, or a
    GraphQL error) describe the client's own request."""
    original = error.original_error
    return original is not None and not isinstance(original, (ClientError, GraphQLError))


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        extensions=[
            ParserCache,
            ValidationCache,
            lambda: MaskErrors(should_mask_error=is_internal, error_message="Internal error."),
        ],
    )


schema = build_schema()


def export_sdl() -> str:
    """The SDL kept in ``schema.graphql``."""
    return schema.as_str() + "\n"
