"""Tax bureau (税务局): tax credit ratings and announced tax arrears."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, RecordType


@strawberry.enum(description="Annual tax credit grade (纳税信用等级).")
class TaxCreditGrade(Enum):
    A = "A"
    B = "B"
    M = "M"
    C = "C"
    D = "D"


@strawberry.type(description="Annual tax credit rating, published each April for the year before.")
class TaxRating(CreditRecord):
    year: int
    grade: TaxCreditGrade
    score: Decimal | None
    published_on: date


@strawberry.type(description="Announced tax arrears (欠税公告).")
class TaxArrear(CreditRecord):
    tax_type: str
    amount: Decimal = strawberry.field(description="Outstanding tax in yuan (元).")
    period_end: date | None = strawberry.field(description="End of the tax period owed.")
    announced_on: date
    tax_authority: str


TAX_RATINGS = RecordType(
    "tax_ratings", TaxRating, field="taxRatings",
    fields={Key.USCC: "Tax credit ratings, newest year first."},
)
TAX_ARREARS = RecordType(
    "tax_arrears", TaxArrear, field="taxArrears", fields={Key.USCC: "Announced tax arrears."},
)
