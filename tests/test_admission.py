"""Admission (gateway/admission.py): every limit at its value and just over,
checked before execution; introspection and suggestions only where enabled."""

from __future__ import annotations

import dataclasses
import tracemalloc

import pytest
from graphql import get_introspection_query

from gateway.admission import Admission, Refused
from gateway.schema import graphql_schema, source_field_names
from tests.gateway_fixtures import Gateway, StatementCounter

A = "91441300195971850Y"


def admission(demo_settings, **limits) -> Admission:
    return Admission(graphql_schema(), dataclasses.replace(demo_settings, **limits),
                     source_field_names())


def refused(admission: Admission, query: str, variables=None, introspection=True) -> Refused:
    with pytest.raises(Refused) as caught:
        admission.admit(query, None, variables or {}, introspection)
    return caught.value


def nested(depth: int) -> str:
    """A query of exactly ``depth`` levels of fields."""
    inner = "__typename"
    levels = ["entity(uscc: $u)", "penalties", "provenance"][:depth - 1]
    for level in reversed(levels):
        inner = f"{level} {{ {inner} }}"
    return f"query($u: USCC!) {{ {inner} }}"


LIMITS = [
    # (setting, value, query at the limit, query just over it, code)
    ("max_query_length", 40, "{ __typename }".ljust(40), "{ __typename }".ljust(41),
     "QUERY_TOO_LONG"),
    ("max_tokens", 5, "{ a: __typename }", "{ a: __typename __typename }", "TOO_MANY_TOKENS"),
    ("max_depth", 3, nested(3), nested(4), "QUERY_TOO_DEEP"),
    ("max_aliases", 2, "{ a: __typename b: __typename }",
     "{ a: __typename b: __typename c: __typename }", "TOO_MANY_ALIASES"),
    ("max_root_fields", 2, "{ __typename myAccess { purpose { code } } }",
     "{ __typename a: __typename myAccess { purpose { code } } }", "TOO_MANY_ROOT_FIELDS"),
    ("max_directives", 2, "{ __typename @include(if: true) @skip(if: false) }",
     "{ __typename @include(if: true) @skip(if: false) @include(if: true) }",
     "TOO_MANY_DIRECTIVES"),
]


@pytest.mark.parametrize(("setting", "value", "at", "over", "code"), LIMITS,
                         ids=[limit[0] for limit in LIMITS])
def test_each_limit_admits_its_value_and_refuses_one_more(demo_settings, setting, value, at,
                                                          over, code):
    checked = admission(demo_settings, **{setting: value})
    assert checked.admit(at, None, {"u": A}, True).document is not None
    error = refused(checked, over, {"u": A})
    assert error.code == code and error.status == 400
    assert error.extensions == {"code": code, "limit": value}
    assert str(value) in error.message


def test_subjects_are_counted_across_aliases_and_lists(demo_settings):
    checked = admission(demo_settings, max_subjects_per_request=3)
    query = ("query($l: [USCC!]!) { a: entity(uscc: \"%s\") { uscc } "
             "b: entities(usccs: $l) { uscc } }" % A)
    assert checked.admit(query, None, {"l": [A, A]}, True).subjects == 3
    assert refused(checked, query, {"l": [A, A, A]}).code == "TOO_MANY_SUBJECTS"
    literal = '{ entities(usccs: ["%s", "%s", "%s", "%s"]) { uscc } }' % (A, A, A, A)
    assert refused(checked, literal).extensions == {"code": "TOO_MANY_SUBJECTS", "limit": 3}
    assert refused(checked, '{ searchEntities(name: "电子", first: 4) { hasNextPage } }').code \
        == "TOO_MANY_SUBJECTS"


def test_the_cost_counts_record_types_per_subject(demo_settings):
    checked = admission(demo_settings, max_cost=6)
    query = "query($l: [USCC!]!) { entities(usccs: $l) { penalties { fine } taxRatings { grade } } }"
    assert checked.admit(query, None, {"l": [A, A]}, True).cost == 6  # 2 x (1 + 2)
    error = refused(checked, query, {"l": [A, A, A]})
    assert error.code == "QUERY_TOO_COSTLY" and "got 9" in error.message


def test_a_megabyte_token_soup_is_refused_and_keeps_nothing(demo_settings):
    import gc

    checked = admission(demo_settings, max_query_length=2_000_000)
    soup = "{ " + " ".join(f"f{i}" for i in range(150_000)) + " }"
    assert len(soup) > 1_000_000

    def refuse() -> str:
        return refused(checked, soup).code

    refuse()  # warm up
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    codes = {refuse() for _ in range(3)}
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert codes == {"TOO_MANY_TOKENS"}
    assert after - before < 200_000, after - before  # nothing of it stays
    assert not checked._cache  # (its time is measured by bench, not asserted here)
    assert refused(admission(demo_settings), soup).code == "QUERY_TOO_LONG"


def test_the_parse_cache_is_bounded_by_the_text_it_holds(demo_settings):
    from gateway import admission as module

    checked = admission(demo_settings)
    texts = [f"{{ a{i}: __typename {' ' * 15_000}}}" for i in range(400)]
    for text in texts:
        checked.admit(text, None, {}, True)
    assert checked._cached_length <= module.CACHE_TEXT_BUDGET
    assert len(checked._cache) < len(texts)


@pytest.fixture
def closed(demo_settings):
    """The demo gateway with introspection off, as `serve` has it."""
    with Gateway(dataclasses.replace(demo_settings, introspection=False)) as gateway:
        yield gateway


def test_introspection_and_suggestions_are_off_unless_the_client_may(closed):
    public = ("xinyong-huizhou", "PUBLIC_DISCLOSURE")
    response = closed.post(get_introspection_query(), public)
    assert response.status_code == 400
    assert {e["extensions"]["code"] for e in response.json()["errors"]} == {
        "GRAPHQL_VALIDATION_FAILED"}
    typo = closed.post("{ entiti(uscc: \"%s\") { uscc } }" % A, public)
    assert typo.status_code == 400
    assert "Did you mean" not in typo.text and "entity" not in typo.text.replace("entiti", "")
    nested = closed.post("{ entity(uscc: \"%s\") { registraton { name } } }" % A, public)
    (error,) = nested.json()["errors"]
    assert error["message"] == "Cannot query field 'registraton'."  # no type, no hint
    # The market regulator's app builds views: the registry lets it introspect.
    builder = ("hz-market-app", "SUPERVISION")
    body = closed.query(get_introspection_query(), builder)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    hinted = closed.post("{ entiti(uscc: \"%s\") { uscc } }" % A, builder)
    assert "Did you mean 'entity'" in hinted.text


def test_a_refused_request_reads_no_source(closed):
    counter = StatementCounter(closed.registry)
    aliases = " ".join(f'e{i}: entity(uscc: "{A}") {{ penalties {{ fine }} }}' for i in range(40))
    response = closed.post("{ %s }" % aliases)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"] == {"code": "TOO_MANY_ALIASES", "limit": 30}
    assert counter.total == 0
