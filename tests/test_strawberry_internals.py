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
