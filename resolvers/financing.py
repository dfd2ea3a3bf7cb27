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
from typing import Any, Optional

import strawberry

from core.divisions import division_name
from core.errors import InvalidInput, SourceError
from core.records.base import Provenance
from core.records.court import DISHONEST_DEBTORS
from core.records.credit_office import (
    AUTHORIZATIONS, COMMITMENTS, CREDIT_LISTS, PENALTIES, CreditListKind, FulfilmentStatus,
    Severity,
)
from core.records.environment import ENVIRONMENTAL_PENALTIES
from core.records.housing_fund import HOUSING_FUND
from core.records.hrss import SOCIAL_INSURANCE
from core.records.market import (
    ABNORMAL_OPERATIONS, REGISTRATION, SERIOUS_VIOLATIONS,
)
from core.records.tax import TAX_ARREARS, TAX_RATINGS, TaxCreditGrade
from core.records.utilities import UTILITY_BILLS, Utility
from core.scalars import USCC
from resolvers import indicators as ind
from resolvers.profile_parts import (
    CompliancePart,
    EmploymentPart,
    HousingFundPart,
    IdentityPart,
    Indicator,
    MonthValue,
    PartRelease,
    PartStatus,
    PenaltyCounts,
    PositiveSignalsPart,
    TaxPart,
    UtilitiesPart,
    UtilityPunctuality,
    YearGrade,
)
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
    "housingFund": (HOUSING_FUND.name,),
    "utilities": (UTILITY_BILLS.name,),
    "positiveSignals": (REGISTRATION.name, CREDIT_LISTS.name, COMMITMENTS.name, PENALTIES.name,
                        ENVIRONMENTAL_PENALTIES.name, ABNORMAL_OPERATIONS.name,
                        SERIOUS_VIOLATIONS.name, DISHONEST_DEBTORS.name),
}
# Parts a part also reads: the A rating comes from the tax part, the
# indicators from every part.
PARTS_USED = {"positiveSignals": ("tax",), "indicators": tuple(PART_RECORD_TYPES)}


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
    # No path: a partner that fails or does not share a list for the purpose
    # is reported once for the request (``partial``), not at every part.
    loaders = info.context.loaders
    return {name: loaders.value(name, subject.uscc) for name in PART_RECORD_TYPES[part]}


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
        for source in loaders.answered(name, subject.uscc):
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
        division = self.uscc[2:8]
        registration = records and records[REGISTRATION.name]
        if registration is None:
            return IdentityPart(release=release, name=None, registration_status=None,
                                entity_type=None, division_code=division,
                                county=division_name(division), established_on=None,
                                age_months=None, registered_capital=None)
        established = registration.established_on
        return IdentityPart(
            release=release, name=registration.name, registration_status=registration.status,
            entity_type=registration.entity_type, division_code=division,
            county=division_name(division),
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
        months = records[SOCIAL_INSURANCE.name]
        return EmploymentPart(
            release=release,
            insured_headcount=_series(months, self.as_of, lambda m: m.insured_headcount),
            months_with_arrears=_arrears_months(months, self.as_of),
        )

    @strawberry.field(description="Housing provident fund contributors over the last 12 "
                      "months.", metadata={GATES_AUTHORIZATION: True})
    def housing_fund(self, info: Info) -> Optional[HousingFundPart]:
        release, records = _read(info, self.subject, "housingFund")
        if records is None:
            return HousingFundPart(release=release, contributing_employees=None,
                                   months_with_arrears=None)
        months = records[HOUSING_FUND.name]
        return HousingFundPart(
            release=release,
            contributing_employees=_series(months, self.as_of, lambda m: m.contributing_employees),
            months_with_arrears=_arrears_months(months, self.as_of),
        )

    @strawberry.field(description="Utility bills' punctuality and electricity use over the "
                      "last 12 months.", metadata={GATES_AUTHORIZATION: True})
    def utilities(self, info: Info) -> Optional[UtilitiesPart]:
        release, records = _read(info, self.subject, "utilities")
        if records is None:
            return UtilitiesPart(release=release, punctuality=None, electricity_use=None)
        bills = _in_window(records[UTILITY_BILLS.name], self.as_of)
        punctuality = []
        for utility in Utility:
            of_utility = [bill for bill in bills if bill.utility is utility]
            if of_utility:
                ratio, due = ind.on_time_ratio(of_utility, self.as_of)
                punctuality.append(UtilityPunctuality(utility=utility, bills_due=due,
                                                      on_time_ratio=ratio))
        return UtilitiesPart(release=release, punctuality=punctuality,
                             electricity_use=_series(
                                 [b for b in bills if b.utility is Utility.ELECTRICITY],
                                 self.as_of, lambda b: int(b.usage)))

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


def _in_window(records: Sequence[Any], today: date) -> list[Any]:
    periods = set(ind.window(today))
    return [record for record in records if record.period in periods]


def _arrears_months(months: Sequence[Any], today: date) -> int:
    owed = ind.monthly(months, ind.window(today), lambda m: m.period, lambda m: m.arrears)
    return ind.months_with(owed, lambda amount: amount > 0)


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

    def contributors(housing: dict) -> list[tuple[str, Any]]:
        return ind.monthly(housing[HOUSING_FUND.name], ind.window(today),
                           lambda m: m.period, lambda m: m.contributing_employees)

    def electricity(utilities: dict) -> list[tuple[str, Any]]:
        return ind.monthly([b for b in utilities[UTILITY_BILLS.name]
                            if b.utility is Utility.ELECTRICITY], ind.window(today),
                           lambda b: b.period, lambda b: b.usage)

    def on_time(utilities: dict) -> float | None:
        return ind.on_time_ratio(_in_window(utilities[UTILITY_BILLS.name], today), today)[0]

    add("REGISTRATION_AGE_MONTHS", ("identity",), age)
    add("ACTIVE_ADVERSE_RECORDS", ("compliance",), adverse)
    add("YEARS_WITHOUT_ADVERSE_RECORDS", ("identity", "compliance"), clean_years)
    add("TAX_ARREARS_AMOUNT", ("tax",), lambda tax: ind.total(a.amount for a in tax[TAX_ARREARS.name]))
    add("INSURED_HEADCOUNT_TREND", ("employment",), lambda e: ind.trend(headcount(e)))
    add("SOCIAL_INSURANCE_ARREARS_MONTHS", ("employment",),
        lambda e: _arrears_months(e[SOCIAL_INSURANCE.name], today))
    add("HOUSING_FUND_CONTRIBUTORS_TREND", ("housingFund",), lambda h: ind.trend(contributors(h)))
    add("HOUSING_FUND_ARREARS_MONTHS", ("housingFund",),
        lambda h: _arrears_months(h[HOUSING_FUND.name], today))
    add("UTILITY_ON_TIME_RATIO", ("utilities",), on_time)
    add("ELECTRICITY_USE_TREND", ("utilities",), lambda u: ind.trend(electricity(u)))
    return found
