"""strawberry's internals are reached in one module only, and that module
fails here, not in production, when an upgrade changes them."""

from __future__ import annotations

import re
from pathlib import Path

from graphql import GraphQLObjectType, GraphQLSchema

from gateway.strawberry_internals import graphql_core_schema
from gateway.schema import schema

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("core", "connectors", "resolvers", "gateway", "demo", "bench")
PRIVATE = re.compile(r"\._schema\b|_raw_info|schema_converter|strawberry\.utils|"
                     r"__strawberry_definition__|from graphql\.[a-z_.]*\b_")


def test_the_graphql_core_schema_is_strawberrys_own():
    core = graphql_core_schema(schema)
    assert isinstance(core, GraphQLSchema)
    query = core.get_type("Query")
    assert isinstance(query, GraphQLObjectType) and "entity" in query.fields
    # the very scalars strawberry converted, with their literal checks
    assert core.get_type("USCC").parse_literal is not None


def test_no_other_module_reaches_behind_strawberrys_public_api():
    offenders = []
    for package in PRODUCTION:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "strawberry_internals.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PRIVATE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_what_compiled_execution_assumes_of_strawberrys_types():
    import strawberry
    from core.records.base import Provenance
    from core.records.credit_office import Penalty
    from gateway.strawberry_internals import (cast_mark, isoformat_serializer,
                                              plain_instance_class)

    core = graphql_core_schema(schema)
    penalty_type = core.get_type("Penalty")
    assert plain_instance_class(penalty_type) is Penalty
    assert plain_instance_class(GraphQLObjectType("NotStrawberrys", {})) is None
    # strawberry.cast marks the instance in its __dict__, under cast_mark()
    record = Penalty.__new__(Penalty)
    assert cast_mark() not in record.__dict__
    strawberry.cast(Provenance, record)
    assert record.__dict__[cast_mark()] is Provenance
    assert not penalty_type.is_type_of(record, None)  # why a cast instance is not passed fast
    assert core.get_type("Date").serialize is isoformat_serializer()
    assert core.get_type("DateTime").serialize is isoformat_serializer()
