"""The one place that reaches behind strawberry's public API.

strawberry builds a graphql-core schema and keeps it as ``Schema._schema``;
there is no public accessor, and validation (custom scalars' literal
checks), planning and introspection of types all need that schema, not one
rebuilt from SDL. ``tests/test_strawberry_internals.py`` fails when an
upgrade breaks this.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema


def graphql_core_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema behind a ``strawberry.Schema``."""
    core = schema._schema
    if not isinstance(core, GraphQLSchema):  # pragma: no cover - an incompatible strawberry
        raise TypeError(f"strawberry's schema holds {type(core)!r}, not a GraphQLSchema")
    return core
