"""SME financing profiles for bank portals (信易贷): one record per enterprise,
in parts, each read from its sources and released under the policy.

A part is public (identity, compliance, positive signals) or needs the
enterprise's authorization: the catalog decides (``FinancingProfile.<part>``
is ``authorized`` for a purpose, with its data category). An authorized
part the enterprise has not authorized the asking bank for is returned
with ``status: WITHHELD`` and no data; its records are never read. A part
whose source fails is null with the source's coded error; the other parts
still return.

``financing_profiles`` reads what the selected parts need for every
enterprise at once: the public record types and the authorizations first,
then each authorized record type for the enterprises that granted it, one
statement per source and record type per batch whatever the number of
enterprises. The parts then complete synchronously from those answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Optional

import strawberry

from core.errors import InvalidInput, SourceError
from core.records.base import Provenance
from core.records.court import DISHONEST_DEBTORS
from core.records.credit_office import (
    AUTHORIZATIONS, COMMITMENTS, CREDIT_LISTS, PENALTIES, CreditListKind, FulfilmentStatus,
    Severity,
)
from core.records.environment import ENVIRONMENTAL_PENALTIES
from core.records.hrss import SOCIAL_INSURANCE
from core.records.market import (
    ABNORMAL_OPERATIONS, REGISTRATION, SERIOUS_VIOLATIONS, EntityStatus,
)
from core.records.tax import TAX_ARREARS, TAX_RATINGS, TaxCreditGrade
from core.scalars import USCC
from resolvers import indicators as ind
from resolvers.info import Info

MAX_PORTFOLIO = 500  # enterprises in one financingProfiles request
#: Metadata of the part fields that check the enterprise's authorization
#: themselves (``gateway.policy.check_catalog`` accepts them as gates).
GATES_AUTHORIZATION = "gates_authorization"

# Part (GraphQL field of FinancingProfile) -> the record types it reads.
PART_RECORD_TYPES: dict[str, tuple[str, ...]] = {
    "identity": (REGISTRATION.name,),
    "compliance": (PENALTIES.name, ENVIRONMENTAL_PENALTIES.name, ABNORMAL_OPERATIONS.name,
                   SERIOUS_VIOLATIONS.name, DISHONEST_DEBTORS.name, CREDIT_LISTS.name),
    "tax": (TAX_RATINGS.name, TAX_ARREARS.name),
    "employment": (SOCIAL_INSURANCE.name,),
    "positiveSignals": (REGISTRATION.name, CREDIT_LISTS.name, COMMITMENTS.name, PENALTIES.name,
                        ENVIRONMENTAL_PENALTIES.name, ABNORMAL_OPERATIONS.name,
                        SERIOUS_VIOLATIONS.name, DISHONEST_DEBTORS.name),
}
# Parts a part also reads: the A rating comes from the tax part, the
# indicators from every part.
PARTS_USED = {"positiveSignals": ("tax",), "indicators": tuple(PART_RECORD_TYPES)}


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
        "records for the enterprise carries the profile's time).")
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


class _Subject:
    """What the parts of one enterprise's profile share: ``granted`` maps each
    authorized part the enterprise granted the caller to the authorization's
    number (or is the error that kept its authorizations from being read)."""

    __slots__ = ("uscc", "granted", "built")

    def __init__(self, uscc: str, granted: dict[str, str] | BaseException) -> None:
        self.uscc = uscc
        self.granted = granted
        self.built = datetime.now(timezone.utc)


def _category(info: Info, part: str) -> str | None:
    """The data category ``part`` needs the enterprise's authorization for (the catalog)."""
    return info.context.decision.authorized.get(f"FinancingProfile.{part}")


def _records(info: Info, subject: _Subject, part: str) -> dict[str, Any] | None:
    """The part's records by record type (prefetched), or ``None`` when the
    part is withheld for lack of the enterprise's authorization. A source's
    failure (the authorizations' included) raises its error."""
    if _category(info, part) is not None:
        if isinstance(subject.granted, BaseException):
            raise subject.granted
        number = subject.granted.get(part)
        if number is None:
            return None
        info.context.authorizations_used.add(number)
    loaders = info.context.loaders
    return {name: loaders.value(name, subject.uscc, info.path) for name in PART_RECORD_TYPES[part]}


def _read(info: Info, subject: _Subject, part: str) -> tuple[PartRelease, dict[str, Any] | None]:
    """The part's release and its records (``None`` when withheld: the
    withholding is recorded for the audit trail)."""
    records = _records(info, subject, part)
    category = _category(info, part)
    if records is None:
        info.context.denied_fields.append(f"FinancingProfile.{part}")
        return PartRelease(status=PartStatus.WITHHELD, reason="NO_SUBJECT_AUTHORIZATION",
                           data_category=category, authorization=None, provenance=[],
                           as_of=subject.built), None
    found: dict[str, Provenance] = {}
    for value in records.values():
        for record in value if isinstance(value, list) else [value] if value else []:
            found.setdefault(record.provenance.source, record.provenance)
    consulted: dict[str, Provenance] = {}
    loaders = info.context.loaders
    for name in PART_RECORD_TYPES[part]:
        for source in loaders.sources_of(name, subject.uscc):
            consulted.setdefault(source.id, found.get(source.id) or Provenance(
                source=source.id, department=source.settings.department,
                city=source.settings.city, as_of=subject.built))
    number = None if category is None else subject.granted.get(part)
    return PartRelease(
        status=PartStatus.AVAILABLE, reason=None, data_category=category, authorization=number,
        provenance=list(consulted.values()),
        as_of=min((p.as_of for p in found.values()), default=subject.built),
    ), records


def _active(records: Sequence[Any], today: date) -> list[Any]:
    """Listings in force: not removed, not expired."""
    return [r for r in records if r.removed_on is None
            and (getattr(r, "expires_on", None) is None or r.expires_on >= today)]


def _adverse_dates(records: dict[str, Any], today: date) -> list[date]:
    dates = [p.decided_on for p in records[PENALTIES.name]]
    dates += [p.decided_on for p in records[ENVIRONMENTAL_PENALTIES.name]]
    dates += [r.listed_on for r in records[ABNORMAL_OPERATIONS.name]]
    dates += [r.listed_on for r in records[SERIOUS_VIOLATIONS.name]]
    dates += [r.published_on for r in records[DISHONEST_DEBTORS.name]]
    dates += [r.listed_on for r in records[CREDIT_LISTS.name] if r.kind is CreditListKind.BLACK]
    return dates


@strawberry.type(description="An SME's financing profile (信易贷): public parts for every "
                 "financing request, the others with the enterprise's authorization.")
class FinancingProfile:
    uscc: USCC
    as_of: date = strawberry.field(description="The day (in China) the profile was computed for.")
    subject: strawberry.Private[_Subject]

    @strawberry.field(description="Identity and registration.")
    def identity(self, info: Info) -> Optional[IdentityPart]:
        release, records = _read(info, self.subject, "identity")
        registration = records and records[REGISTRATION.name]
        if registration is None:
            return IdentityPart(release=release, name=None, registration_status=None,
                                entity_type=None, division_code=self.uscc[2:8],
                                established_on=None, age_months=None, registered_capital=None)
        established = registration.established_on
        return IdentityPart(
            release=release, name=registration.name, registration_status=registration.status,
            entity_type=registration.entity_type, division_code=self.uscc[2:8],
            established_on=established,
            age_months=None if established is None else ind.full_months_between(
                established, self.as_of),
            registered_capital=registration.registered_capital,
        )

    @strawberry.field(description="Compliance: penalties, lists, dishonest-debtor status.")
    def compliance(self, info: Info) -> Optional[CompliancePart]:
        release, records = _read(info, self.subject, "compliance")
        today = self.as_of
        unrepaired = [p for p in records[PENALTIES.name] if p.repaired_on is None]
        counts = {severity: sum(1 for p in unrepaired if p.severity is severity)
                  for severity in Severity}
        return CompliancePart(
            release=release,
            active_penalties=PenaltyCounts(minor=counts[Severity.MINOR],
                                           general=counts[Severity.GENERAL],
                                           serious=counts[Severity.SERIOUS]),
            active_environmental_penalties=sum(
                1 for p in records[ENVIRONMENTAL_PENALTIES.name] if p.repaired_on is None),
            abnormal_operations_listed=bool(_active(records[ABNORMAL_OPERATIONS.name], today)),
            serious_violation_listed=bool(_active(records[SERIOUS_VIOLATIONS.name], today)),
            dishonest_debtor=bool(_active(records[DISHONEST_DEBTORS.name], today)),
            black_list_entries=len([e for e in _active(records[CREDIT_LISTS.name], today)
                                    if e.kind is CreditListKind.BLACK]),
        )

    @strawberry.field(description="Tax ratings and arrears.",
                      metadata={GATES_AUTHORIZATION: True})
    def tax(self, info: Info) -> Optional[TaxPart]:
        release, records = _read(info, self.subject, "tax")
        if records is None:
            return TaxPart(release=release, ratings=None, arrears_announced=None,
                           arrears_amount=None)
        ratings = sorted(records[TAX_RATINGS.name], key=lambda r: r.year, reverse=True)
        arrears = records[TAX_ARREARS.name]
        return TaxPart(
            release=release,
            ratings=[YearGrade(year=r.year, grade=r.grade) for r in ratings[:ind.RATING_YEARS]],
            arrears_announced=len(arrears),
            arrears_amount=ind.total(a.amount for a in arrears),
        )

    @strawberry.field(description="Insured headcount over the last 12 months.",
                      metadata={GATES_AUTHORIZATION: True})
    def employment(self, info: Info) -> Optional[EmploymentPart]:
        release, records = _read(info, self.subject, "employment")
        if records is None:
            return EmploymentPart(release=release, insured_headcount=None, months_with_arrears=None)
        months = _series(records[SOCIAL_INSURANCE.name], self.as_of,
                         lambda m: m.insured_headcount)
        arrears = ind.monthly(records[SOCIAL_INSURANCE.name], ind.window(self.as_of),
                              lambda m: m.period, lambda m: m.arrears)
        return EmploymentPart(
            release=release, insured_headcount=months,
            months_with_arrears=ind.months_with(arrears, lambda owed: owed > 0),
        )

    @strawberry.field(description="Red list, A rating, kept commitments, years without "
                      "adverse records.")
    def positive_signals(self, info: Info) -> Optional[PositiveSignalsPart]:
        release, records = _read(info, self.subject, "positiveSignals")
        today = self.as_of
        registration = records[REGISTRATION.name]
        years = ind.years_without_adverse(
            _adverse_dates(records, today),
            registration.established_on if registration else None, today)
        return PositiveSignalsPart(
            release=release,
            red_list_entries=len([e for e in _active(records[CREDIT_LISTS.name], today)
                                  if e.kind is CreditListKind.RED]),
            kept_commitments=sum(1 for c in records[COMMITMENTS.name]
                                 if c.fulfilment is FulfilmentStatus.KEPT),
            tax_grade_a=_tax_grade_a(info, self.subject),
            years_without_adverse_records=years,
            three_years_clean=None if years is None else years >= ind.CLEAN_YEARS,
        )


    @strawberry.field(description="Computed indicators (README: Financing profiles).")
    def indicators(self, info: Info) -> Optional[list[Indicator]]:
        return _indicators(info, self.subject, self.as_of)


def _series(records: Sequence[Any], today: date, value_of: Any) -> list[MonthValue]:
    return [MonthValue(period=period, value=value) for period, value in
            ind.monthly(records, ind.window(today), lambda m: m.period, value_of)]


def _tax_grade_a(info: Info, subject: _Subject) -> bool | None:
    """Whether the latest rated year's grade is A; ``None`` when the tax part is withheld."""
    records = _records(info, subject, "tax")
    if records is None:
        return None
    ratings = records[TAX_RATINGS.name]
    return bool(ratings) and max(ratings, key=lambda r: r.year).grade is TaxCreditGrade.A


async def financing_profiles(info: Info, usccs: list[str]) -> list[FinancingProfile]:
    """The profiles of ``usccs`` (at most ``MAX_PORTFOLIO``), in the order asked."""
    if len(usccs) > MAX_PORTFOLIO:
        raise InvalidInput(f"financingProfiles takes at most {MAX_PORTFOLIO} enterprises, "
                           f"got {len(usccs)}")
    context = info.context
    keys = list(dict.fromkeys(usccs))
    context.subjects.update(keys)
    selected = set(context.plan.children.get((info.path.key,), ())) if context.plan else set()
    for part in list(selected):
        selected.update(PARTS_USED.get(part, ()))
    parts = [part for part in PART_RECORD_TYPES if part in selected]
    gated = {part: category for part in parts if (category := _category(info, part))}
    public = [name for part in parts if part not in gated for name in PART_RECORD_TYPES[part]]
    await context.loaders.prefetch(
        list(dict.fromkeys(public + ([AUTHORIZATIONS.name] if gated else []))), keys)
    grants = {key: _grants(info, key, gated) for key in keys}
    for part in gated:
        granted = [key for key in keys if isinstance(grants[key], dict) and part in grants[key]]
        if granted:
            await context.loaders.prefetch(list(PART_RECORD_TYPES[part]), granted)
    return [FinancingProfile(uscc=uscc, as_of=context.today,
                             subject=_Subject(uscc, grants[uscc])) for uscc in usccs]


def _grants(info: Info, uscc: str, gated: dict[str, str]) -> dict[str, str] | BaseException:
    """Authorized part -> the number of the enterprise's authorization
    covering the caller's organization, the purpose and the part's category
    today; the source's error when the authorizations cannot be read."""
    if not gated:
        return {}
    context = info.context
    try:
        authorizations = context.loaders.value(AUTHORIZATIONS.name, uscc)
    except SourceError as error:
        return error
    grantee = context.client.organization_code
    decision = context.decision
    purpose_codes = decision.purpose.authorization_codes
    found = {}
    for part, category in gated.items():
        codes = decision.authorization_codes[category]
        for authorization in authorizations:
            if grantee and authorization.covers(grantee, purpose_codes, codes, context.today):
                found[part] = authorization.number
                break
    return found


def _indicators(info: Info, subject: _Subject, today: date) -> list[Indicator]:
    """Every indicator, from the parts released to the caller (withheld parts
    give withheld indicators; a failing source raises its error)."""
    parts = {part: _records(info, subject, part) for part in PART_RECORD_TYPES}
    found: list[Indicator] = []

    def add(code: str, uses: tuple[str, ...], compute: Any) -> None:
        withheld = any(parts[part] is None for part in uses)
        value = None if withheld else compute(*(parts[part] for part in uses))
        found.append(Indicator(code=code, value=None if value is None else float(value),
                               uses=list(uses), withheld=withheld))

    def age(identity: dict) -> int | None:
        registration = identity[REGISTRATION.name]
        if registration is None or registration.established_on is None:
            return None
        return ind.full_months_between(registration.established_on, today)

    def adverse(compliance: dict) -> int:
        return (sum(1 for p in compliance[PENALTIES.name] if p.repaired_on is None)
                + sum(1 for p in compliance[ENVIRONMENTAL_PENALTIES.name] if p.repaired_on is None)
                + len(_active(compliance[ABNORMAL_OPERATIONS.name], today))
                + len(_active(compliance[SERIOUS_VIOLATIONS.name], today))
                + len(_active(compliance[DISHONEST_DEBTORS.name], today))
                + sum(1 for e in _active(compliance[CREDIT_LISTS.name], today)
                      if e.kind is CreditListKind.BLACK))

    def clean_years(identity: dict, compliance: dict) -> int | None:
        registration = identity[REGISTRATION.name]
        return ind.years_without_adverse(_adverse_dates(compliance, today),
                                         registration.established_on if registration else None,
                                         today)

    def headcount(employment: dict) -> list[tuple[str, Any]]:
        return ind.monthly(employment[SOCIAL_INSURANCE.name], ind.window(today),
                           lambda m: m.period, lambda m: m.insured_headcount)

    def arrears_months(employment: dict) -> int:
        owed = ind.monthly(employment[SOCIAL_INSURANCE.name], ind.window(today),
                           lambda m: m.period, lambda m: m.arrears)
        return ind.months_with(owed, lambda amount: amount > 0)

    add("REGISTRATION_AGE_MONTHS", ("identity",), age)
    add("ACTIVE_ADVERSE_RECORDS", ("compliance",), adverse)
    add("YEARS_WITHOUT_ADVERSE_RECORDS", ("identity", "compliance"), clean_years)
    add("TAX_ARREARS_AMOUNT", ("tax",), lambda tax: ind.total(a.amount for a in tax[TAX_ARREARS.name]))
    add("INSURED_HEADCOUNT_TREND", ("employment",), lambda e: ind.trend(headcount(e)))
    add("SOCIAL_INSURANCE_ARREARS_MONTHS", ("employment",), arrears_months)
    return found
