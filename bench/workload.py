"""The query every benchmark sends, as GraphQL and as the ceiling's field list.

``FIELDS`` maps each ``Entity`` field of the workload to (record type, the
record fields selected); the GraphQL text and the ceiling's hand-written
JSON both come from it, so the two answer the same question with the same
statements. The workload is the work the peer federation stack
(``../shared/peer``, Hive Gateway over Node subgraphs) can do too: the
record types and attributes of ``PEER_WORKLOAD``, whose subgraphs implement
exactly those. Field names, record types and the order come from the
connectors' declarations; a source added later is not in the workload
until the peer serves it (nothing here needs editing for it to run).
"""

from __future__ import annotations

from connectors import RECORD_TYPES
from core.records.base import Key

#: Record type -> the attributes selected: what the peer serves.
PEER_WORKLOAD = {
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


#: ``Entity`` field -> (record type, the record fields selected), in schema order.
FIELDS = {
    declared.field: (declared.name, PEER_WORKLOAD[declared.name])
    for declared in RECORD_TYPES.values()
    if Key.USCC in declared.fields and declared.name in PEER_WORKLOAD
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
