"""The query every benchmark sends, as GraphQL and as the ceiling's field list.

``FIELDS`` maps each ``Entity`` field to (record type, the record fields
selected); the GraphQL text and the ceiling's hand-written JSON both come
from it, so the two answer the same question with the same statements.
"""

from __future__ import annotations

from connectors import record_types as rt

FIELDS = {
    "registration": (rt.REGISTRATION, ("name", "legal_representative", "entity_type", "status",
                                       "registered_capital", "established_on")),
    "abnormalOperations": (rt.ABNORMAL_OPERATIONS, ("reason", "listed_on", "removed_on")),
    "seriousViolations": (rt.SERIOUS_VIOLATIONS, ("basis", "listed_on")),
    "licences": (rt.LICENCES, ("decision_number", "category", "licence_name", "valid_to")),
    "penalties": (rt.PENALTIES, ("decision_number", "severity", "decided_on", "publicity_ends_on")),
    "taxRatings": (rt.TAX_RATINGS, ("year", "grade")),
    "taxArrears": (rt.TAX_ARREARS, ("tax_type", "amount")),
    "dishonestDebtorRecords": (rt.DISHONEST_DEBTORS, ("case_code", "performance")),
    "socialInsurance": (rt.SOCIAL_INSURANCE, ("period", "insured_headcount", "arrears")),
    "environmentalRatings": (rt.ENVIRONMENTAL_RATINGS, ("year", "grade")),
    "environmentalPenalties": (rt.ENVIRONMENTAL_PENALTIES, ("decision_number", "fine")),
    "creditLists": (rt.CREDIT_LISTS, ("kind", "list_name")),
    "commitments": (rt.COMMITMENTS, ("kind", "fulfilment")),
    "repairs": (rt.REPAIRS, ("record_reference", "status")),
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
