"""Ecology and environment (生态环境局): environmental credit ratings and penalties."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, PUBLICITY_ENDS, REPAIRED_ON, RecordType


@strawberry.enum(description="Guangdong environmental credit grade (企业环境信用评价).")
class EnvironmentalCreditGrade(Enum):
    GREEN = "环保诚信"
    BLUE = "环保良好"
    YELLOW = "环保警示"
    RED = "环保不良"
    BLACK = "环保严重失信"


@strawberry.type(description="Annual environmental credit rating.")
class EnvironmentalRating(CreditRecord):
    year: int
    grade: EnvironmentalCreditGrade
    rated_by: str


@strawberry.type(description="An environmental administrative penalty (环境行政处罚).")
class EnvironmentalPenalty(CreditRecord):
    decision_number: str
    violation: str
    penalty: str
    fine: Decimal | None = strawberry.field(description="Fine in 万元 (10,000 CNY).")
    decided_on: date
    decided_by: str
    publicity_ends_on: date | None = strawberry.field(default=None, description=PUBLICITY_ENDS)
    repaired_on: date | None = strawberry.field(default=None, description=REPAIRED_ON)


ENVIRONMENTAL_RATINGS = RecordType(
    "environmental_ratings", EnvironmentalRating, field="environmentalRatings",
    fields={Key.USCC: "Environmental credit ratings, newest first."},
)
ENVIRONMENTAL_PENALTIES = RecordType(
    "environmental_penalties", EnvironmentalPenalty, field="environmentalPenalties",
    fields={Key.USCC: "Environmental penalties, newest first."},
)
