"""The Shenzhen partner: another instance of this gateway, asked over GraphQL.

Shenzhen's endpoint speaks our own schema (``schema.graphql``) and our own
authentication (RFC 9068 bearer tokens from its token endpoint, the purpose
of use in ``X-Purpose-Of-Use``). One batch of keys is one POST::

    query($u: [USCC!]!) { entities(usccs: $u) { uscc penalties { decidedOn severity } } }

The sub-selection holds only the fields the operation selected on the record
type (``SourceCall.selected``; provenance is ours, never asked for) plus the
attributes our row rules read for the caller's purpose (``gateway/policy.toml``
rows), nothing more. Contracts:

* registrations only for codes in ``settings.divisions`` (others: ``None``, no call);
* list record types for any USCC; keys that are not USCCs (resident ID
  numbers of ``Person`` fields) get ``[]`` and are never sent;
* Shenzhen's policy nulling a field (``FORBIDDEN_FOR_PURPOSE``), or its 403
  to the purpose or the client, is ``PartnerRefused``: what it withholds is
  never widened; any other error on the field is ``SourceUnavailable``; a
  missing or wrong-shaped ``data`` is ``BadSourceData``;
* every call carries the purpose, the request id, the asking organization and
  the hop header, so Shenzhen never forwards it again.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from strawberry.types import get_object_definition

from connectors.base import SourceCall
from connectors.partner import PartnerConnector, is_uscc
from core.errors import PartnerRefused, SourceUnavailable
from core.records.base import Provenance, RecordType
from core.records.court import DISHONEST_DEBTORS
from core.records.credit_office import CREDIT_LISTS, LICENCES, PENALTIES
from core.records.market import ABNORMAL_OPERATIONS, REGISTRATION, SERIOUS_VIOLATIONS

log = logging.getLogger("gateway.sources")

FORBIDDEN = "FORBIDDEN_FOR_PURPOSE"


def camel(name: str) -> str:
    """``decided_on`` -> ``decidedOn`` (the schema's field names)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _converter(hint: Any) -> tuple[Callable[[Any], Any], bool]:
    """A JSON-value converter for a record attribute's type, and whether it is optional.
    Converters raise ``ValueError``/``TypeError``/``KeyError`` for a wrong value."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _converter(inner)[0], True
    hint = getattr(hint, "__supertype__", hint)  # NewType (USCC) -> str
    if typing.get_origin(hint) is list:
        item = _converter(args[0])[0]

        def convert_list(value: Any) -> list:
            if not isinstance(value, list):
                raise TypeError("expected a list")
            return [item(v) for v in value]
        return convert_list, False
    if isinstance(hint, type) and issubclass(hint, Enum):
        return lambda value: hint[_typed(value, str)], False
    if hint is date:
        return lambda value: date.fromisoformat(_typed(value, str)), False
    if hint is Decimal:
        return _decimal, False
    if hint in (str, int):
        return functools.partial(_typed, kind=hint), False
    raise TypeError(f"no JSON converter for {hint!r}")


def _typed(value: Any, kind: type) -> Any:
    if type(value) is not kind:  # bool is not an int here
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError("expected a decimal")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """How one record type is asked for and read back."""

    field: str  # the Entity field
    type_name: str  # its GraphQL record type
    record: type  # the record class (core.records)
    single: bool = False
    # GraphQL field name -> (attribute, converter, optional); provenance excluded
    attributes: Mapping[str, tuple[str, Callable[[Any], Any], bool]] = dataclasses.field(
        default_factory=dict)

    @classmethod
    def of(cls, record_type: RecordType) -> Shape:
        record = record_type.record
        hints = typing.get_type_hints(record)
        attributes = {
            camel(f.name): (f.name, *_converter(hints[f.name]))
            for f in dataclasses.fields(record) if f.name != "provenance"
        }
        return cls(record_type.field, get_object_definition(record, strict=True).name, record,
                   not record_type.many, attributes)


#: What Shenzhen's gateway is asked for: the records it shares with other cities.
SHARED = (REGISTRATION, PENALTIES, LICENCES, ABNORMAL_OPERATIONS, SERIOUS_VIOLATIONS,
          DISHONEST_DEBTORS, CREDIT_LISTS)
SHAPES: dict[str, Shape] = {record_type.name: Shape.of(record_type) for record_type in SHARED}


class ShenzhenConnector(PartnerConnector):
    """Shenzhen's public credit gateway (``connector = "shenzhen"``): one
    batch method for every record type it shares, asked through the
    record type's ``Entity`` field."""

    kind = "shenzhen"
    record_types = {record_type.name: record_type for record_type in SHARED}

    async def load(self, record_type: str, keys: Sequence[str], call: SourceCall) -> list:
        """Registrations of codes within ``settings.divisions`` (``None`` for
        others); lists for any USCC (``[]`` for other keys)."""
        if SHAPES[record_type].single:
            asked = [k for k in keys if self.is_home(k)]
            found = await self._fetch(record_type, asked, call) if asked else {}
            return [found.get(k) for k in keys]
        asked = [k for k in keys if is_uscc(k)]
        found = await self._fetch(record_type, asked, call) if asked else {}
        return [found.get(k, []) for k in keys]

    # -- the request ------------------------------------------------------------

    def selection(self, record_type: str, call: SourceCall) -> list[str]:
        """The record type's fields to ask for: those the operation selected plus
        those our row rules read for the purpose, in schema order."""
        shape = SHAPES[record_type]
        prefix = shape.type_name + "."
        wanted = {c[len(prefix):] for c in call.selected if c.startswith(prefix)}
        wanted |= {camel(name) for name in call.reads.get(record_type, ())}
        return [name for name in shape.attributes if name in wanted]

    def query(self, record_type: str, fields: Sequence[str]) -> str:
        """The GraphQL document for one batch (``__typename`` when no field is needed)."""
        inner = " ".join(fields) or "__typename"
        return (f"query($u: [USCC!]!) {{ entities(usccs: $u) {{ uscc "
                f"{SHAPES[record_type].field} {{ {inner} }} }} }}")

    async def _fetch(self, record_type: str, usccs: Sequence[str], call: SourceCall) -> dict:
        """One POST for ``usccs``: USCC -> record (or list of records)."""
        fields = self.selection(record_type, call)
        body = {"query": self.query(record_type, fields), "variables": {"u": list(usccs)}}
        answer = await self.client.post_json("", body, headers=self.headers(call))
        return self._read(record_type, fields, usccs, answer, call)

    # -- the answer -------------------------------------------------------------

    def _read(self, record_type: str, fields: Sequence[str], usccs: Sequence[str],
              answer: Any, call: SourceCall) -> dict:
        shape = SHAPES[record_type]
        if not isinstance(answer, dict):
            raise self.client.bad_data(f"{self._name} answered with something other than an object")
        errors = answer.get("errors") or []
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            raise self.client.bad_data(f"{self._name} answered with malformed errors")
        codes = [_code(e) for e in errors]
        if FORBIDDEN in codes:
            log.info("source %s refused %s for purpose %s", self.id, shape.field, call.purpose)
            raise self._refused(call.purpose)
        data = answer.get("data")
        entities = data.get("entities") if isinstance(data, dict) else None
        if not isinstance(entities, list) or len(entities) != len(usccs):
            raise self.client.bad_data(f"{self._name} answered without the entities asked for")
        if errors:
            log.warning("source %s: %s failed there: %s", self.id, shape.field, sorted(set(codes)))
            raise SourceUnavailable(
                self.id, f"{self._name} could not provide {shape.field} ({codes[0]})")
        provenance = self.provenance()
        build = functools.partial(self._record, shape, fields, provenance)
        found: dict[str, Any] = {}
        try:
            for uscc, entity in zip(usccs, entities):
                if not isinstance(entity, dict) or entity.get("uscc") != uscc:
                    raise ValueError("entities out of order")
                value = entity.get(shape.field)
                if shape.single:
                    found[uscc] = None if value is None else build(value)
                elif isinstance(value, list):
                    found[uscc] = [build(item) for item in value]
                else:
                    raise TypeError(f"{shape.field} is not a list")
        except (ValueError, TypeError, KeyError) as exc:
            raise self._bad_data(exc) from None
        return found

    @staticmethod
    def _record(shape: Shape, fields: Sequence[str], provenance: Provenance, item: Any) -> Any:
        """One record from its JSON object; fields not asked for are ``None``."""
        if not isinstance(item, dict):
            raise TypeError("a record is not an object")
        values: dict[str, Any] = {"provenance": provenance}
        for name, (attribute, convert, optional) in shape.attributes.items():
            if name not in fields:
                values[attribute] = None
                continue
            value = item[name]
            if value is None and not optional:
                raise ValueError(f"{shape.type_name}.{name} is null")
            values[attribute] = None if value is None else convert(value)
        return shape.record(**values)

    def _refused(self, purpose: str) -> PartnerRefused:
        return PartnerRefused(
            self.id, f"{self._name} does not share this data for purpose {purpose}")

    @property
    def _name(self) -> str:
        return f"source {self.id} ({self.settings.department})"



def _code(error: dict) -> str:
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, dict) else None
    return code if isinstance(code, str) else "UNKNOWN"


