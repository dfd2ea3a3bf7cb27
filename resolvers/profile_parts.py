"""The parts of a financing profile (``resolvers.financing``): plain
strawberry types, each part with its ``PartRelease``."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Optional

import strawberry

from core.records.base import Provenance
from core.records.market import EntityStatus
from core.records.tax import TaxCreditGrade
from core.records.utilities import Utility


@strawberry.enum(description="Whether a part of a financing profile was released.")
class PartStatus(Enum):
    AVAILABLE = "AVAILABLE"
    WITHHELD = "WITHHELD"


@strawberry.type(description="How a part of a financing profile was released.")
class PartRelease:
    status: PartStatus
    reason: Optional[str] = strawberry.field(
        description="Why the part was withheld: `NO_SUBJECT_AUTHORIZATION` (the enterprise has "
        "not authorized the asking institution for `dataCategory` for this purpose, today).")
    data_category: Optional[str] = strawberry.field(
        description="The catalog's data category the part needs the enterprise's "
        "authorization for; null for public parts.")
    authorization: Optional[str] = strawberry.field(
        description="Number of the enterprise's authorization the part was released under.")
    provenance: list[Provenance] = strawberry.field(
        description="The sources the part was read from, one entry each (a source without "
        "records for the enterprise carries the profile's time; a partner city that did not "
        "answer is left out and named in a `partial` error of the response).")
    as_of: datetime = strawberry.field(
        description="When the part's records were read (UTC): the earliest read among its "
        "records, or the profile's time when it holds none.")


@strawberry.type(description="A monthly value; null for a month without a record.")
class MonthValue:
    period: str = strawberry.field(description="Month, YYYY-MM.")
    value: Optional[int]


@strawberry.type(description="Identity and registration (public).")
class IdentityPart:
    release: PartRelease
    name: Optional[str]
    registration_status: Optional[EntityStatus]
    entity_type: Optional[str]
    division_code: str = strawberry.field(
        description="Administrative division of the USCC (positions 3-8, GB/T 2260).")
    county: Optional[str] = strawberry.field(
        description="The division's name (city, district or county); null for a division "
        "outside the gateway's table (the Shenzhen-Dongguan-Huizhou circle, Shanwei, Heyuan).")
    established_on: Optional[date]
    age_months: Optional[int] = strawberry.field(
        description="Whole months from establishment to today.")
    registered_capital: Optional[Decimal] = strawberry.field(
        description="Registered capital in 万元 (10,000 CNY).")


@strawberry.type(description="Active penalties by severity.")
class PenaltyCounts:
    minor: int
    general: int
    serious: int


@strawberry.type(description="Compliance (public): records within their publicity windows.")
class CompliancePart:
    release: PartRelease
    active_penalties: Optional[PenaltyCounts] = strawberry.field(
        description="Administrative penalties shown for this purpose and not repaired.")
    active_environmental_penalties: Optional[int]
    abnormal_operations_listed: Optional[bool] = strawberry.field(
        description="Listed in the abnormal operations list now.")
    serious_violation_listed: Optional[bool]
    dishonest_debtor: Optional[bool] = strawberry.field(
        description="A dishonest judgment debtor record not removed.")
    black_list_entries: Optional[int] = strawberry.field(
        description="Black-list entries in force.")


@strawberry.type(description="One year's tax credit grade.")
class YearGrade:
    year: int
    grade: TaxCreditGrade


@strawberry.type(description="Tax (needs the enterprise's authorization).")
class TaxPart:
    release: PartRelease
    ratings: Optional[list[YearGrade]] = strawberry.field(
        description="Tax credit ratings of the last three rated years, newest first.")
    arrears_announced: Optional[int] = strawberry.field(description="Announced tax arrears.")
    arrears_amount: Optional[Decimal] = strawberry.field(
        description="Their total, in yuan (元).")


@strawberry.type(description="Employment (needs the enterprise's authorization).")
class EmploymentPart:
    release: PartRelease
    insured_headcount: Optional[list[MonthValue]] = strawberry.field(
        description="Insured employees in each of the last 12 full months, oldest first.")
    months_with_arrears: Optional[int] = strawberry.field(
        description="Months of the 12 with social-insurance contributions owed.")


@strawberry.type(description="Housing provident fund (needs the enterprise's authorization).")
class HousingFundPart:
    release: PartRelease
    contributing_employees: Optional[list[MonthValue]] = strawberry.field(
        description="Employees contributed for in each of the last 12 full months, oldest "
        "first (all the enterprise's unit accounts).")
    months_with_arrears: Optional[int] = strawberry.field(
        description="Months of the 12 with contributions owed.")


@strawberry.type(description="How punctually one utility's bills were paid.")
class UtilityPunctuality:
    utility: Utility
    bills_due: int = strawberry.field(
        description="Bills of the last 12 full months already due (all accounts).")
    on_time_ratio: Optional[float] = strawberry.field(
        description="Share of them paid in full by their due date; null when none is due.")


@strawberry.type(description="Utilities (needs the enterprise's authorization).")
class UtilitiesPart:
    release: PartRelease
    punctuality: Optional[list[UtilityPunctuality]] = strawberry.field(
        description="Per utility the enterprise has an account of, over the last 12 full months.")
    electricity_use: Optional[list[MonthValue]] = strawberry.field(
        description="Electricity used in each of the last 12 full months, in kWh (all "
        "accounts), oldest first.")


@strawberry.type(description="Positive signals (public; the A rating needs the tax part).")
class PositiveSignalsPart:
    release: PartRelease
    red_list_entries: Optional[int] = strawberry.field(description="Red-list entries in force.")
    kept_commitments: Optional[int] = strawberry.field(
        description="Credit commitments fulfilled (已履约).")
    tax_grade_a: Optional[bool] = strawberry.field(
        description="Latest tax credit grade is A; null when the tax part is withheld.")
    years_without_adverse_records: Optional[int] = strawberry.field(
        description="Whole years since the newest adverse record shown for this purpose "
        "(since establishment when there is none).")
    three_years_clean: Optional[bool] = strawberry.field(
        description="At least three consecutive years without adverse credit records.")


@strawberry.type(description="A computed indicator; the README defines each.")
class Indicator:
    code: str
    value: Optional[float] = strawberry.field(
        description="Null when a part it uses is withheld or its data do not allow it.")
    uses: list[str] = strawberry.field(description="The profile parts it is computed from.")
    withheld: bool = strawberry.field(description="A part it uses was withheld.")
