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


def plain_instance_class(object_type: Any) -> type | None:
    """The class of which an instance (not cast with ``strawberry.cast``:
    no cast mark in its ``__dict__``) is always accepted by the
    ``is_type_of`` strawberry made for the graphql-core ``object_type``;
    ``None`` when that cannot be said (no strawberry definition, a
    user-defined ``is_type_of``, instances without a ``__dict__``)."""
    definition = (object_type.extensions or {}).get("strawberry-definition")
    origin = getattr(definition, "origin", None)
    if (not isinstance(origin, type) or getattr(definition, "is_type_of", None) is not None
            or origin.__dictoffset__ == 0):
        return None
    return origin


def cast_mark() -> str:
    """The instance attribute ``strawberry.cast`` sets."""
    from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
    return TYPE_CAST_ATTRIBUTE


def isoformat_serializer() -> Any:
    """The output coercion of strawberry's Date, DateTime and Time scalars."""
    from strawberry.schema.types.base_scalars import isoformat
    return isoformat
