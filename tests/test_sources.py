"""The source registry: which connector serves each record type, and the
start-up checks that refuse a configuration it could not route."""

from __future__ import annotations

import dataclasses

import pytest

from connectors import RECORD_TYPES
from connectors.base import Connector
from core.errors import ConfigurationError
from core.config import SourceSettings
from gateway.sources import SourceRegistry


class Serving(Connector):
    """A connector serving the given record types (never called here)."""

    kind = "test"

    def __init__(self, source_id: str, record_types, divisions=()) -> None:
        super().__init__(SourceSettings(id=source_id, connector="test", url="", department="测试",
                                        city="测试", divisions=tuple(divisions)))
        self.record_types = {name: RECORD_TYPES[name] for name in record_types}


def everything_but(*left_out: str) -> Serving:
    return Serving("local", set(RECORD_TYPES) - set(left_out))


def test_each_record_type_has_a_source_and_registrations_a_home():
    local = everything_but()
    partner = Serving("partner", ["registration", "penalties"], divisions=["4403"])
    registry = SourceRegistry({"local": local, "partner": partner})
    assert registry.home("registration", "91440300568520498A") is partner
    assert registry.home("registration", "91441300195971850Y") is local
    assert registry.serving("penalties") == [local, partner]
    assert registry.local("registration") is local


def test_a_record_type_nobody_serves_stops_start_up():
    with pytest.raises(ConfigurationError, match=r"no configured source serves record type\(s\) "
                                                 r"\['tax_ratings'\]"):
        SourceRegistry({"local": everything_but("tax_ratings")})


def test_two_local_sources_of_registrations_stop_start_up():
    second = Serving("second", ["registration"])
    with pytest.raises(ConfigurationError, match="served locally by both 'local' and 'second'"):
        SourceRegistry({"local": everything_but(), "second": second})


def test_overlapping_divisions_stop_start_up():
    a = Serving("a", ["registration"], divisions=["4403"])
    b = Serving("b", ["registration"], divisions=["440305"])
    with pytest.raises(ConfigurationError, match="divisions '4403' of 'a' and '440305' of 'b' overlap"):
        SourceRegistry({"local": everything_but(), "a": a, "b": b})


def test_an_unknown_connector_kind_names_the_source(demo_settings):
    sources = tuple(dataclasses.replace(s, connector="oracle") if s.id == "hz-tax" else s
                    for s in demo_settings.sources)
    with pytest.raises(ConfigurationError, match="source 'hz-tax': unknown connector 'oracle'"):
        SourceRegistry.from_settings(dataclasses.replace(demo_settings, sources=sources))


def test_a_missing_source_of_the_demo_stops_start_up(demo_settings):
    sources = tuple(s for s in demo_settings.sources if s.id != "hz-court")
    with pytest.raises(ConfigurationError, match="dishonest_debtors"):
        SourceRegistry.from_settings(dataclasses.replace(demo_settings, sources=sources))
