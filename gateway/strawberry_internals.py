"""The one place that reaches behind strawberry's public API.

strawberry builds a graphql-core schema and keeps it as ``Schema._schema``;
there is no public accessor, and validation (custom scalars' literal
checks), planning and introspection of types all need that schema, not one
rebuilt from SDL. Compiled execution (``gateway.compiled``) derives from
the executor strawberry uses and reads which strawberry field a graphql-core
field was made from. ``tests/test_strawberry_internals.py`` fails when an
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


def strawberry_executor() -> type:
    """The graphql-core ``Executor`` subclass strawberry runs operations with
    by default (its resolve info carries the operation's extensions); a
    schema's ``execution_context_class`` must derive from it."""
    from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
    return StrawberryGraphQLCoreExecutionContext


def strawberry_field_of(field_def: Any) -> Any:
    """The ``StrawberryField`` a graphql-core field was converted from, or
    ``None`` (a field strawberry did not make: ``__typename``...)."""
    return (field_def.extensions or {}).get("strawberry-definition")
