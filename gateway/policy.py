"""The purpose-of-use decision: a pure function of the catalog and a purpose.

``decide`` turns the catalog into a ``Decision`` for one purpose: which field
coordinates (``Type.field``) the purpose may use outright, which only with the
data subject's authorization, which are masked, and which row rules filter
each record list. Decisions are computed once per purpose at start-up and
checked in memory by the enforcement extension and the loaders.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from typing import Any

from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLSchema, get_named_type

from gateway.catalog import Catalog, MaskRule, Purpose, RowRule
from core.errors import ConfigurationError

Keep = Callable[[Any, date], bool]


def _name(value: Any) -> Any:
    return value.name if isinstance(value, Enum) else value


def add_months(day: date, months: int) -> date:
    """The same day ``months`` calendar months later; the month's last day
    where it has no such day (31 August + 6 months = 28 or 29 February)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class PublicityWindow:
    """A publicity window rule read from the catalog: the record's window
    runs from its ``date`` for ``max_months`` of its severity, its last day
    included, or until the end date the department gave (``ends``) where
    that is earlier; a repair takes effect no earlier than ``min_months``."""

    date_of: str
    severity_of: str
    default_severity: str | None
    ends_of: str | None
    max_months: Mapping[str, int]
    min_months: Mapping[str, int]
    repaired_of: str | None
    repair_kinds: frozenset[str]
    reference_of: str | None

    @classmethod
    def of(cls, rule: RowRule) -> PublicityWindow:
        o = rule.options
        return cls(o["date"], o["severity"], o.get("default_severity"), o.get("ends"),
                   o["max_months"], o["min_months"], o.get("repaired"), o["repair_kinds"],
                   o.get("reference"))

    def severity(self, record: Any) -> str | None:
        return _name(getattr(record, self.severity_of, None)) or self.default_severity

    def ends_on(self, record: Any) -> date:
        """The window's last day for ``record``."""
        end = add_months(getattr(record, self.date_of), self.max_months[self.severity(record)])
        declared = getattr(record, self.ends_of, None) if self.ends_of else None
        return declared if declared is not None and declared < end else end

    def repaired_from(self, record: Any) -> date | None:
        """The day ``record``'s repair takes effect (``None``: not repaired)."""
        repaired = getattr(record, self.repaired_of, None) if self.repaired_of else None
        if repaired is None:
            return None
        earliest = add_months(getattr(record, self.date_of),
                              self.min_months.get(self.severity(record), 0))
        return max(repaired, earliest)

    def prepare(self, records: Sequence[Any], repairs: Sequence[Any] = ()) -> None:
        """Set on each record the window's end it is judged by (``ends``)
        and, where the source gave none, its repair date from ``repairs``:
        the latest approved repair of one of ``repair_kinds`` naming the
        record's ``reference`` (a decision number)."""
        repaired: dict[str, date] = {}
        for repair in repairs:
            if (repair.record_kind in self.repair_kinds and _name(repair.status) == "APPROVED"
                    and repair.repaired_on is not None):
                known = repaired.get(repair.record_reference)
                if known is None or repair.repaired_on > known:
                    repaired[repair.record_reference] = repair.repaired_on
        for record in records:
            if self.ends_of and getattr(record, self.date_of, None) is not None:
                setattr(record, self.ends_of, self.ends_on(record))
            if repaired and getattr(record, self.repaired_of) is None:
                setattr(record, self.repaired_of,
                        repaired.get(getattr(record, self.reference_of)))


def _publicity_window(rule: RowRule, purpose: str) -> Keep | None:
    o = rule.options
    if purpose in o["exempt_purposes"]:
        return None
    window = PublicityWindow.of(rule)
    hide_severities = o["not_public"] if purpose in o["public_purposes"] else frozenset()

    def keep(record: Any, today: date) -> bool:
        if getattr(record, window.date_of, None) is None:
            return False  # a window without its start cannot be judged: not shown
        if window.severity(record) in hide_severities:
            return False
        repaired = window.repaired_from(record)
        if repaired is not None and repaired <= today:
            return False
        return today <= window.ends_on(record)

    return keep


def _active_period(rule: RowRule, purpose: str) -> Keep | None:
    o = rule.options
    if purpose in o["exempt_purposes"]:
        return None
    removed_of, expires_of = o["removed"], o.get("expires")

    def keep(record: Any, today: date) -> bool:
        removed = getattr(record, removed_of)
        if removed is not None and removed <= today:
            return False
        expires = getattr(record, expires_of) if expires_of else None
        return expires is None or today < expires

    return keep


def _value_in(rule: RowRule, purpose: str) -> Keep | None:
    allowed = rule.options["allowed"].get(purpose)
    if allowed is None:
        return None
    attribute = rule.options["attribute"]
    return lambda record, today: _name(getattr(record, attribute)) in allowed


# Options of each row-rule kind that name a record attribute the rule reads.
RULE_ATTRIBUTES = {
    "publicity_window": ("date", "severity", "ends", "repaired"),
    "active_period": ("removed", "expires"),
    "value_in": ("attribute",),
}

_RULE_KINDS: dict[str, Callable[[RowRule, str], Keep | None]] = {
    "publicity_window": _publicity_window,
    "active_period": _active_period,
    "value_in": _value_in,
}


@dataclass(frozen=True, slots=True)
class RowFilter:
    """The row rules one purpose applies to one record list."""

    rules: tuple[str, ...]
    keeps: tuple[Keep, ...]

    def apply(self, records: Sequence[Any], today: date) -> tuple[list[Any], int]:
        """The records the purpose may see, and how many were withheld."""
        kept = [r for r in records if all(keep(r, today) for keep in self.keeps)]
        return kept, len(records) - len(kept)


@dataclass(frozen=True)
class Decision:
    """What one purpose may use. Coordinates are ``Type.field`` names."""

    purpose: Purpose
    allowed: frozenset[str]
    authorized: Mapping[str, str]  # coordinate -> data category needing the subject's authorization
    masks: Mapping[str, MaskRule]  # coordinate -> mask applied for this purpose
    row_filters: Mapping[str, RowFilter]  # record type -> filter
    # (type, record type) of a source-backed field -> the category it needs
    # the subject's authorization for: decided per field, as the catalog is.
    authorization_by_field: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # record type -> its publicity window, for every purpose: the end date and
    # repair each record is shown with (``PublicityWindow.prepare``).
    windows: Mapping[str, PublicityWindow] = field(default_factory=dict)
    # record type -> the record attributes this purpose's row rules read: a
    # partner must send them too (a window without its date is not computed).
    reads: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # data category -> its codes in authorization records (with
    # ``purpose.authorization_codes``, what ``Authorization.covers`` checks).
    authorization_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def permits(self, coordinate: str) -> bool:
        return coordinate in self.allowed or coordinate in self.authorized


def decide(catalog: Catalog, purpose: str, record_types: Mapping[str, str]) -> Decision:
    """The decision for ``purpose``. ``record_types`` maps source-backed field
    coordinates to the record type their loader serves."""
    allowed, authorized, masks, rules_by_type = set(), {}, {}, {}
    for item in catalog.items.values():
        if purpose in item.purposes:
            allowed.update(item.fields)
        elif purpose in item.authorized_purposes:
            authorized.update(dict.fromkeys(item.fields, item.authorization_category))
        else:
            continue
        if item.mask and purpose not in catalog.masks[item.mask].full_for:
            masks.update(dict.fromkeys(item.fields, catalog.masks[item.mask]))
        for coordinate in item.fields:
            if coordinate in record_types and item.rows:
                rules_by_type[record_types[coordinate]] = item.rows
    row_filters = {}
    for record_type, rule_ids in rules_by_type.items():
        built = [(rid, _RULE_KINDS[catalog.rows[rid].kind](catalog.rows[rid], purpose))
                 for rid in rule_ids]
        active = [(rid, keep) for rid, keep in built if keep is not None]
        if active:
            row_filters[record_type] = RowFilter(
                tuple(rid for rid, _ in active), tuple(keep for _, keep in active)
            )
    by_field = {
        (c.split(".", 1)[0], record_types[c]): category
        for c, category in authorized.items() if c in record_types
    }
    windows = publicity_windows(catalog, record_types)
    reads: dict[str, set[str]] = {}
    for record_type, row_filter in row_filters.items():
        for rule_id in row_filter.rules:
            rule = catalog.rows[rule_id]
            reads.setdefault(record_type, set()).update(
                rule.options[option] for option in RULE_ATTRIBUTES[rule.kind]
                if rule.options.get(option))
    return Decision(
        catalog.purposes[purpose], frozenset(allowed), authorized, masks, row_filters, by_field,
        windows, {record_type: frozenset(names) for record_type, names in reads.items()},
        {category.id: category.authorization_codes for category in catalog.categories.values()},
    )


def publicity_windows(catalog: Catalog, record_types: Mapping[str, str]) -> dict[str, PublicityWindow]:
    """Record type -> the publicity window its fields' items apply."""
    item_of = catalog.item_of()
    windows = {}
    for coordinate, record_type in record_types.items():
        for rule_id in item_of[coordinate].rows if coordinate in item_of else ():
            rule = catalog.rows[rule_id]
            if rule.kind == "publicity_window":
                windows[record_type] = PublicityWindow.of(rule)
    return windows


@dataclass(frozen=True, slots=True)
class FieldShape:
    coordinate: str
    parent: str
    returns: str  # named return type
    non_null: bool
    is_list: bool


def schema_fields(schema: GraphQLSchema) -> dict[str, FieldShape]:
    """Every field of every object type of the schema (introspection excluded)."""
    shapes = {}
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field_def in graphql_type.fields.items():
            inner = field_def.type.of_type if isinstance(field_def.type, GraphQLNonNull) else field_def.type
            shapes[f"{type_name}.{field_name}"] = FieldShape(
                f"{type_name}.{field_name}", type_name, get_named_type(field_def.type).name,
                isinstance(field_def.type, GraphQLNonNull), isinstance(inner, GraphQLList),
            )
    return shapes


def check_catalog(
    catalog: Catalog,
    fields: Mapping[str, FieldShape],
    record_types: Mapping[str, str],
    maskable: Iterable[str],
    gates: Iterable[str] = (),
) -> None:
    """Raise ``ConfigurationError`` unless the catalog decides every field of the
    schema and every decision can be enforced:

    - each field belongs to one item, and each item field exists;
    - masks only on fields that apply them (``maskable``);
    - a purpose never denies a non-null field while allowing a field that leads
      to its type (the denial could not be expressed as null);
    - authorized items gate at least one source-backed field;
    - fields served by the same record type carry the same row rules.
    """
    item_of = catalog.item_of()
    missing = sorted(set(fields) - set(item_of))
    if missing:
        raise ConfigurationError(
            f"no policy entry for field(s) {missing}: add each to an item of the catalog"
        )
    unknown = sorted(set(item_of) - set(fields))
    if unknown:
        raise ConfigurationError(f"the policy catalog names unknown field(s) {unknown}")
    maskable = set(maskable)
    for item in catalog.items.values():
        if item.mask and not set(item.fields) <= maskable:
            raise ConfigurationError(
                f"item {item.id!r} has a mask but field(s) "
                f"{sorted(set(item.fields) - maskable)} cannot apply it"
            )
        if item.authorized_purposes and not any(
                c in record_types or c in gates for c in item.fields):
            raise ConfigurationError(
                f"item {item.id!r} needs authorization but has no field that checks it "
                "(a source-backed field or an authorization gate)"
            )
    rules: dict[str, tuple[str, tuple[str, ...]]] = {}
    for coordinate, record_type in record_types.items():
        item = item_of[coordinate]
        if record_type in rules and rules[record_type][1] != item.rows:
            raise ConfigurationError(
                f"fields {rules[record_type][0]} and {coordinate} serve record type "
                f"{record_type!r} but have different row rules"
            )
        rules[record_type] = (coordinate, item.rows)
    leading_to: dict[str, list[str]] = {}
    for shape in fields.values():
        leading_to.setdefault(shape.returns, []).append(shape.coordinate)
    for purpose in catalog.purposes:
        decision = decide(catalog, purpose, record_types)
        for shape in fields.values():
            if not shape.non_null or decision.permits(shape.coordinate):
                continue
            parents = [c for c in leading_to.get(shape.parent, []) if decision.permits(c)]
            if parents or shape.parent == "Query":
                raise ConfigurationError(
                    f"purpose {purpose} denies non-null field {shape.coordinate} but may use "
                    f"{parents or ['the query root']}: make the field nullable or deny those too"
                )


@dataclass(frozen=True, slots=True)
class FieldAccess:
    coordinate: str
    item: str
    item_name: str
    disclosure_class: str
    access: str  # ALLOWED | REQUIRES_AUTHORIZATION | DENIED
    masked: bool
    authorization_category: str | None


def explain(catalog: Catalog, decision: Decision) -> list[FieldAccess]:
    """Every field of the catalog with what ``decision`` lets its purpose do."""
    rows = []
    for item in catalog.items.values():
        for coordinate in item.fields:
            if coordinate in decision.allowed:
                access = "ALLOWED"
            elif coordinate in decision.authorized:
                access = "REQUIRES_AUTHORIZATION"
            else:
                access = "DENIED"
            rows.append(FieldAccess(
                coordinate, item.id, item.name, item.disclosure_class, access,
                access != "DENIED" and coordinate in decision.masks,
                decision.authorized.get(coordinate),
            ))
    return sorted(rows, key=lambda row: row.coordinate)


class Policy:
    """The catalog, checked against the schema at start-up, with its decision
    for every purpose computed once."""

    def __init__(self, catalog: Catalog, fields: Mapping[str, FieldShape],
                 record_types: Mapping[str, str], maskable: Iterable[str],
                 gates: Iterable[str] = ()) -> None:
        check_catalog(catalog, fields, record_types, maskable, frozenset(gates))
        self.catalog = catalog
        self.decisions = {code: decide(catalog, code, record_types) for code in catalog.purposes}

    def explain(self, decision: Decision) -> list[FieldAccess]:
        """Every field of the catalog with what ``decision`` lets its purpose do."""
        return explain(self.catalog, decision)
