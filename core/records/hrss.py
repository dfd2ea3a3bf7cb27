"""Human resources and social security (人力资源和社会保障局): social-insurance contributions."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from core.records.base import CreditRecord, Key, RecordType


@strawberry.type(description="One month of social-insurance contributions (社保缴费).")
class SocialInsuranceMonth(CreditRecord):
    period: str = strawberry.field(description="Contribution month, YYYY-MM.")
    insured_headcount: int
    amount_paid: Decimal = strawberry.field(description="Contributions paid, in yuan (元).")
    arrears: Decimal = strawberry.field(description="Contributions owed, in yuan (元).")


SOCIAL_INSURANCE = RecordType(
    "social_insurance", SocialInsuranceMonth, field="socialInsurance",
    fields={Key.USCC: "Monthly social-insurance contributions, newest first."},
)
