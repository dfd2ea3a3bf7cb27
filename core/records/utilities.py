"""Utilities (水务、供电、燃气): monthly bills of enterprises' water, electricity and gas accounts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, RecordType


@strawberry.enum(description="What a utility account supplies.")
class Utility(Enum):
    WATER = "供水"
    ELECTRICITY = "供电"
    GAS = "供气"


@strawberry.type(description="One month's bill of one of an enterprise's utility accounts "
                             "(水电气缴费).")
class UtilityBill(CreditRecord):
    utility: Utility
    account: str = strawberry.field(description="The supplier's account number (户号).")
    supplier: str = strawberry.field(description="The company supplying the account.")
    period: str = strawberry.field(description="Billing month, YYYY-MM.")
    usage: Decimal = strawberry.field(
        description="Consumption in the month: cubic metres (m³) of water or gas, "
                    "kilowatt-hours (kWh) of electricity.")
    amount_due: Decimal = strawberry.field(description="Amount billed for the month, in yuan (元).")
    due_on: date = strawberry.field(description="Last day to pay the bill without being late.")
    paid_on: date | None = strawberry.field(
        description="Day the bill was paid in full; null while it is unpaid or partly paid.")
    amount_paid: Decimal = strawberry.field(
        description="Amount paid on the bill so far, in yuan (元).")


UTILITY_BILLS = RecordType(
    "utility_bills", UtilityBill, field="utilityBills",
    fields={Key.USCC: "Monthly water, electricity and gas bills of the enterprise's accounts, "
                      "newest first."},
)
