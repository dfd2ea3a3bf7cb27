"""The purpose-of-use policy catalog: one TOML file, validated strictly.

Format (see ``gateway/policy.toml``, the catalog the gateway ships with)::

    [purposes.PUBLIC_DISCLOSURE]
    name = "公示查询"
    legal_basis = "public_information"   # public_information | statutory_duty | data_subject_request
    own_subject_only = false             # true: the caller may only ask about itself
    authorization_codes = ["03"]         # codes of this purpose in subjects' authorization records

    [categories.tax]                  # a data category a subject's authorization can grant
    name = "纳税信息"
    authorization_codes = ["SW"]      # its codes in authorization records (信易贷授权 sjlb)

    [masks.resident_id]               # a masking rule for resident ID numbers
    kind = "resident_id"
    keep_start = 6                    # characters kept at the start ...
    keep_end = 4                      # ... and at the end; the rest becomes '*'
    full_for = ["JOINT_PUNISHMENT"]   # purposes that see the full number

    [rows.penalty_publicity]          # a row rule: which records of a list a purpose sees
    kind = "publicity_window"         # publicity_window | active_period | value_in
    ...                               # kind-specific keys, see ROW_RULE_KEYS

    [items.penalties]                 # a data item: fields that share one decision
    name = "行政处罚信息"
    class = "public"                  # public | government_shared | authorized | internal
    purposes = ["PUBLIC_DISCLOSURE", "LICENSING_REVIEW"]   # or "all"
    authorized_purposes = ["FINANCING"]   # allowed only with the subject's authorization ...
    authorization_category = "tax"        # ... for this data category (a [categories] entry)
    mask = "resident_id"              # optional masking rule for the item's fields
    reported = true                   # named in access histories (false for bookkeeping items)
    rows = ["penalty_publicity"]      # optional row rules for the item's record lists
    fields = ["Entity.penalties", "Penalty.decisionNumber"]

Every object-type field of the schema must belong to exactly one item; the
check against the schema is ``gateway.policy.check_catalog``. Unknown keys,
purposes, masks, rules or classes are ``ConfigurationError``s naming them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigurationError
from gateway.tables import strict_table

DEFAULT_CATALOG = Path(__file__).with_name("policy.toml")
DISCLOSURE_CLASSES = ("public", "government_shared", "authorized", "internal")
# PIPL art. 13: public information, statutory duties, the data subject's own request.
LEGAL_BASES = ("public_information", "statutory_duty", "data_subject_request")
ROW_RULE_KEYS: dict[str, dict[str, bool]] = {
    # key -> required?
    "publicity_window": {
        "kind": True, "date": True, "severity": True, "max_months": True,
        "not_public": True, "public_purposes": True, "exempt_purposes": True,
        "default_severity": False, "ends": False, "min_months": False,
        "repaired": False, "repair_kinds": False, "reference": False,
    },
    "active_period": {"kind": True, "removed": True, "expires": False, "exempt_purposes": True},
    "value_in": {"kind": True, "attribute": True, "allowed": True},
}


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    name: str
    legal_basis: str  # recorded in the audit trail for every release under this purpose
    own_subject_only: bool = False  # the caller may only ask about itself
    # legacy codes naming this purpose in subjects' authorization records
    authorization_codes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Category:
    """A data category a subject's authorization can grant (tax, social insurance...)."""

    id: str
    name: str
    authorization_codes: frozenset[str]  # its codes in authorization records


@dataclass(frozen=True, slots=True)
class MaskRule:
    id: str
    keep_start: int
    keep_end: int
    full_for: frozenset[str]

    def apply(self, value: str | None) -> str | None:
        if value is None or len(value) <= self.keep_start + self.keep_end:
            return value
        hidden = len(value) - self.keep_start - self.keep_end
        return value[: self.keep_start] + "*" * hidden + value[len(value) - self.keep_end:]


@dataclass(frozen=True, slots=True)
class RowRule:
    id: str
    kind: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    name: str
    disclosure_class: str
    purposes: frozenset[str]
    authorized_purposes: frozenset[str]
    authorization_category: str | None
    mask: str | None
    rows: tuple[str, ...]
    fields: tuple[str, ...]
    reported: bool = True  # named in access histories as a category of data released


@dataclass(frozen=True, slots=True)
class Catalog:
    purposes: dict[str, Purpose]
    masks: dict[str, MaskRule]
    rows: dict[str, RowRule]
    items: dict[str, Item]
    categories: dict[str, Category] = field(default_factory=dict)

    def item_of(self) -> dict[str, Item]:
        """Field coordinate (``Type.field``) -> its item."""
        return {coordinate: item for item in self.items.values() for coordinate in item.fields}


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {key} must be a list of strings")
    return tuple(value)


def _purpose_set(where: str, key: str, value: Any, purposes: dict[str, Purpose]) -> frozenset[str]:
    if value == "all":
        return frozenset(purposes)
    codes = _strings(where, key, value)
    unknown = sorted(set(codes) - set(purposes))
    if unknown:
        raise ConfigurationError(f"{where}: {key} names unknown purpose(s) {unknown}")
    return frozenset(codes)


def _codes(section: str, table: dict[str, Any], seen: dict[str, str], kind: str) -> frozenset[str]:
    """A table's ``authorization_codes``: legacy codes of authorization
    records, each naming one purpose and (separately) one category."""
    codes = _strings(section, "authorization_codes", table.get("authorization_codes", []))
    for code in codes:
        other = seen.setdefault(f"{kind}:{code}", section)
        if other != section:
            raise ConfigurationError(f"{section}: authorization code {code!r} is already used "
                                     f"by {other}")
    return frozenset(codes)


def _months(section: str, key: str, value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()
    ):
        raise ConfigurationError(f"{section}: {key} maps severities to whole months")
    return dict(value)


def _publicity_options(section: str, table: dict[str, Any], options: dict[str, Any]) -> None:
    """Check a publicity window's options, in place in ``options``."""
    options["max_months"] = _months(section, "max_months", table["max_months"])
    options["min_months"] = _months(section, "min_months", table.get("min_months", {}))
    for severity, months in options["min_months"].items():
        if months > options["max_months"].get(severity, -1):
            raise ConfigurationError(
                f"{section}: min_months of {severity} must not exceed its max_months")
    default = table.get("default_severity")
    if default is not None and default not in options["max_months"]:
        raise ConfigurationError(f"{section}: default_severity {default!r} has no max_months")
    options["not_public"] = frozenset(_strings(section, "not_public", table["not_public"]))
    options["repair_kinds"] = frozenset(
        _strings(section, "repair_kinds", table.get("repair_kinds", [])))
    if options["repair_kinds"] and not ("repaired" in table and "reference" in table):
        raise ConfigurationError(f"{section}: repair_kinds needs repaired and reference")


def parse_catalog(data: dict[str, Any], where: str = "policy catalog") -> Catalog:
    """Validate a parsed catalog (not yet against the schema)."""
    strict_table(where, data, {"purposes", "items"}, {"masks", "rows", "categories"})
    purposes = {}
    codes_seen: dict[str, str] = {}
    for code, table in data["purposes"].items():
        section = f"{where} [purposes.{code}]"
        table = strict_table(section, table, {"name", "legal_basis"},
                             {"own_subject_only", "authorization_codes"})
        if table["legal_basis"] not in LEGAL_BASES:
            raise ConfigurationError(
                f"{section}: legal_basis must be one of {list(LEGAL_BASES)}"
            )
        if not isinstance(table.get("own_subject_only", False), bool):
            raise ConfigurationError(f"{section}: own_subject_only must be true or false")
        purposes[code] = Purpose(code, table["name"], table["legal_basis"],
                                 table.get("own_subject_only", False),
                                 _codes(section, table, codes_seen, "purpose"))

    categories = {}
    for category_id, table in data.get("categories", {}).items():
        section = f"{where} [categories.{category_id}]"
        table = strict_table(section, table, {"name", "authorization_codes"}, set())
        codes = _codes(section, table, codes_seen, "category")
        if not codes:
            raise ConfigurationError(f"{section}: authorization_codes must name at least one code")
        categories[category_id] = Category(category_id, table["name"], codes)

    masks = {}
    for mask_id, table in data.get("masks", {}).items():
        section = f"{where} [masks.{mask_id}]"
        table = strict_table(section, table, {"kind", "keep_start", "keep_end", "full_for"}, set())
        if table["kind"] != "resident_id":
            raise ConfigurationError(f"{section}: unknown mask kind {table['kind']!r}")
        if not all(isinstance(table[k], int) and table[k] >= 0 for k in ("keep_start", "keep_end")):
            raise ConfigurationError(f"{section}: keep_start and keep_end must be whole numbers")
        if table["keep_start"] > 6:
            raise ConfigurationError(f"{section}: keep_start over 6 would show the birth date")
        if table["keep_end"] > 4:
            raise ConfigurationError(f"{section}: keep_end over 4 would show the birth date")
        masks[mask_id] = MaskRule(
            mask_id, table["keep_start"], table["keep_end"],
            _purpose_set(section, "full_for", table["full_for"], purposes),
        )

    rows = {}
    for rule_id, table in data.get("rows", {}).items():
        section = f"{where} [rows.{rule_id}]"
        if not isinstance(table, dict) or table.get("kind") not in ROW_RULE_KEYS:
            raise ConfigurationError(
                f"{section}: kind must be one of {sorted(ROW_RULE_KEYS)}"
            )
        spec = ROW_RULE_KEYS[table["kind"]]
        table = strict_table(section, table, {k for k, req in spec.items() if req},
                        {k for k, req in spec.items() if not req})
        options = dict(table)
        for key in ("exempt_purposes", "public_purposes"):
            if key in options:
                options[key] = _purpose_set(section, key, options[key], purposes)
        if table["kind"] == "value_in":
            allowed = strict_table(f"{section} allowed", table["allowed"], set(), set(purposes))
            options["allowed"] = {p: frozenset(_strings(section, f"allowed.{p}", v))
                                  for p, v in allowed.items()}
        if table["kind"] == "publicity_window":
            _publicity_options(section, table, options)
        rows[rule_id] = RowRule(rule_id, table["kind"], options)

    items = {}
    seen: dict[str, str] = {}
    for item_id, table in data["items"].items():
        section = f"{where} [items.{item_id}]"
        table = strict_table(section, table, {"name", "class", "purposes", "fields"},
                        {"authorized_purposes", "authorization_category", "mask", "rows",
                         "reported"})
        if table["class"] not in DISCLOSURE_CLASSES:
            raise ConfigurationError(
                f"{section}: class {table['class']!r} is not one of {list(DISCLOSURE_CLASSES)}"
            )
        authorized = _purpose_set(section, "authorized_purposes",
                                  table.get("authorized_purposes", []), purposes)
        category = table.get("authorization_category")
        if bool(authorized) != (category is not None):
            raise ConfigurationError(
                f"{section}: authorized_purposes and authorization_category go together"
            )
        if category is not None and category not in categories:
            raise ConfigurationError(f"{section}: unknown authorization_category {category!r}")
        unnamed = sorted(p for p in authorized if not purposes[p].authorization_codes)
        if unnamed:
            raise ConfigurationError(
                f"{section}: authorized purpose(s) {unnamed} have no authorization_codes: "
                "no authorization could ever grant them")
        allowed = _purpose_set(section, "purposes", table["purposes"], purposes)
        if allowed & authorized:
            raise ConfigurationError(
                f"{section}: {sorted(allowed & authorized)} are both unconditional and authorized"
            )
        mask = table.get("mask")
        if mask is not None and mask not in masks:
            raise ConfigurationError(f"{section}: unknown mask {mask!r}")
        rule_ids = _strings(section, "rows", table.get("rows", []))
        unknown_rules = sorted(set(rule_ids) - set(rows))
        if unknown_rules:
            raise ConfigurationError(f"{section}: unknown row rule(s) {unknown_rules}")
        fields = _strings(section, "fields", table["fields"])
        for coordinate in fields:
            if coordinate in seen:
                raise ConfigurationError(
                    f"{section}: field {coordinate} already belongs to item {seen[coordinate]!r}"
                )
            seen[coordinate] = item_id
        if not isinstance(table.get("reported", True), bool):
            raise ConfigurationError(f"{section}: reported must be true or false")
        items[item_id] = Item(
            item_id, table["name"], table["class"], allowed, authorized, category,
            mask, rule_ids, fields, table.get("reported", True),
        )
    return Catalog(purposes, masks, rows, items, categories)


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read the catalog at ``path`` (default: the packaged ``policy.toml``)."""
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"policy catalog {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"policy catalog {path} is not valid TOML: {exc}") from None
    return parse_catalog(data, f"policy catalog {path}")
