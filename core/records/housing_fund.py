"""Housing provident fund centre (住房公积金管理中心): employers' monthly contributions."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from core.records.base import CreditRecord, Key, RecordType


@strawberry.type(description="One month of an employer's housing provident fund contributions "
                             "(住房公积金缴存) on one of its unit accounts.")
class HousingFundMonth(CreditRecord):
    period: str = strawberry.field(description="Contribution month, YYYY-MM.")
    contributing_employees: int = strawberry.field(
        description="Employees the employer contributed for in the month (缴存人数).")
    amount_paid: Decimal = strawberry.field(
        description="Contributions paid for the month, the employer's and the employees' shares "
                    "together, in yuan (元).")
    arrears: Decimal = strawberry.field(
        description="Contributions for the month still owed (欠缴), in yuan (元).")


HOUSING_FUND = RecordType(
    "housing_fund", HousingFundMonth, field="housingFund",
    fields={Key.USCC: "Monthly housing provident fund contributions, newest first."},
)
