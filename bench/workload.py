"""The query every benchmark sends, as GraphQL and as the ceiling's field list.

``FIELDS`` maps each ``Entity`` field to (record type, the record fields
selected); the GraphQL text and the ceiling's hand-written JSON both come
from it, so the two answer the same question with the same statements.
"""

from __future__ import annotations

import dataclasses
import typing

from connectors import RECORD_TYPES
from core.records.base import Key

# The attributes selected of the record types the peer federation stack
# (../shared/peer) also serves: it implements exactly these. A record type
# not listed here (a source added later) is selected whole: its scalar and
# enum attributes.
CHOSEN = {
    "registration": ("name", "legal_representative", "entity_type", "status",
                     "registered_capital", "established_on"),
    "abnormal_operations": ("reason", "listed_on", "removed_on"),
    "serious_violations": ("basis", "listed_on"),
    "licences": ("decision_number", "category", "licence_name", "valid_to"),
    "penalties": ("decision_number", "severity", "decided_on", "publicity_ends_on"),
    "tax_ratings": ("year", "grade"),
    "tax_arrears": ("tax_type", "amount"),
    "dishonest_debtors": ("case_code", "performance"),
    "social_insurance": ("period", "insured_headcount", "arrears"),
    "environmental_ratings": ("year", "grade"),
    "environmental_penalties": ("decision_number", "fine"),
    "credit_lists": ("kind", "list_name"),
    "commitments": ("kind", "fulfilment"),
    "repairs": ("record_reference", "status"),
}


def _leaves(record: type) -> tuple[str, ...]:
    """The attributes of ``record`` other than its provenance and its lists."""
    hints = typing.get_type_hints(record)
    return tuple(field.name for field in dataclasses.fields(record)
                 if field.name != "provenance" and "list[" not in str(hints[field.name]))


#: Each ``Entity`` field backed by a record type -> (record type, the record
#: fields selected), in schema order: every source of the schema is asked.
FIELDS = {
    declared.field: (declared.name, CHOSEN.get(declared.name) or _leaves(declared.record))
    for declared in RECORD_TYPES.values() if Key.USCC in declared.fields
}
PROVENANCE = ("source", "city")
CLIENT = ("hz-market-app", "SUPERVISION")  # a purpose that may see every item


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _selection() -> str:
    parts = ["uscc"]
    for field, (_, names) in FIELDS.items():
        inner = " ".join(camel(n) for n in names)
        parts.append(f"{field} {{ {inner} provenance {{ {' '.join(PROVENANCE)} }} }}")
    return "{ " + " ".join(parts) + " }"


SELECTION = _selection()
ONE = "query($u: USCC!) { entity(uscc: $u) " + SELECTION + " }"
MANY = "query($u: [USCC!]!) { entities(usccs: $u) " + SELECTION + " }"
