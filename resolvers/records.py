"""The gateway's record types: what connectors map legacy rows into.

These are plain strawberry types (dataclasses, no resolvers): every field is
a synchronous attribute, so resolving them costs no more than a ``getattr``.
Amounts carry their unit in the description; dates are calendar dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum

import strawberry

from resolvers.masking import masked_identifier
from resolvers.scalars import USCC


PUBLICITY_ENDS = (
    "Last day of the record's publicity window (公示截止期), included: its maximum window in "
    "calendar months from the decision date, or the department's earlier end date."
)
REPAIRED_ON = (
    "Date of the approved credit repair of this record, if any; the repair takes effect no "
    "earlier than the end of the minimum publicity window."
)


@strawberry.type(description="Where a record comes from and when it was read.")
class Provenance:
    source: str = strawberry.field(description="Gateway id of the source, e.g. `hz-market`.")
    department: str = strawberry.field(description="The department that keeps the record.")
    city: str = strawberry.field(description="The city whose department keeps the record.")
    as_of: datetime = strawberry.field(description="When the gateway read the record (UTC).")


@strawberry.interface(description="Any credit record: every record says where it comes from.")
class CreditRecord:
    provenance: Provenance


@strawberry.enum(description="Registration status (登记状态).")
class EntityStatus(Enum):
    OPERATING = "存续"
    REVOKED = "吊销"
    CANCELLED = "注销"
    MOVED_OUT = "迁出"


@strawberry.type(description="Enterprise registration held by market regulation (企业登记).")
class Registration(CreditRecord):
    uscc: USCC
    name: str
    legal_representative: str | None
    legal_representative_id_number: str | None = masked_identifier(
        "Resident identity number of the legal representative."
    )
    entity_type: str = strawberry.field(description="Entity type, e.g. 有限责任公司.")
    established_on: date | None
    registered_capital: Decimal | None = strawberry.field(
        description="Registered capital in 万元 (10,000 CNY)."
    )
    status: EntityStatus
    address: str | None
    business_scope: str | None
    registration_authority: str | None


@strawberry.enum(description="Grounds for listing in the abnormal operations list.")
class AbnormalOperationReason(Enum):
    NO_ANNUAL_REPORT = "未按规定报送年度报告"
    NOT_DISCLOSED_BY_DEADLINE = "未在责令期限内公示信息"
    FALSE_DISCLOSURE = "公示信息隐瞒真实情况、弄虚作假"
    UNREACHABLE_AT_ADDRESS = "通过登记的住所或者经营场所无法联系"


@strawberry.type(description="An entry in the abnormal operations list (经营异常名录).")
class AbnormalOperationListing(CreditRecord):
    reason: AbnormalOperationReason
    listed_on: date
    listed_by: str
    removed_on: date | None
    removed_by: str | None
    removal_reason: str | None


@strawberry.type(description="An entry in the serious violation list (严重违法失信名单).")
class SeriousViolationListing(CreditRecord):
    basis: str
    listed_on: date
    listed_by: str
    removed_on: date | None
    removed_by: str | None


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


@strawberry.enum(description="Kind of subject of a court record.")
class SubjectKind(Enum):
    ORGANIZATION = "法人或其他组织"
    PERSON = "自然人"


@strawberry.enum(description="How far the duty set by the judgment has been performed.")
class PerformanceStatus(Enum):
    NOT_PERFORMED = "全部未履行"
    PARTIALLY_PERFORMED = "部分未履行"
    PERFORMED = "已履行"


@strawberry.type(description="A dishonest judgment debtor record (失信被执行人).")
class DishonestDebtorRecord(CreditRecord):
    case_code: str
    subject_kind: SubjectKind
    subject_name: str
    subject_uscc: USCC | None = strawberry.field(description="USCC of an organization.")
    subject_id_number: str | None = masked_identifier("Resident identity number of a person.")
    legal_representative: str | None
    sex: str | None
    age: int | None
    enforcement_court: str
    basis_document: str
    basis_issuer: str
    duty: str
    performance: PerformanceStatus
    behaviour: str
    filed_on: date
    published_on: date
    expires_on: date | None
    removed_on: date | None


@strawberry.type(description="One month of social-insurance contributions (社保缴费).")
class SocialInsuranceMonth(CreditRecord):
    period: str = strawberry.field(description="Contribution month, YYYY-MM.")
    insured_headcount: int
    amount_paid: Decimal = strawberry.field(description="Contributions paid, in yuan (元).")
    arrears: Decimal = strawberry.field(description="Contributions owed, in yuan (元).")


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


@strawberry.enum(description="Licence category (许可类别).")
class LicenceCategory(Enum):
    ORDINARY = "普通"
    FRANCHISE = "特许"
    RECOGNITION = "认可"
    APPROVAL = "核准"
    REGISTRATION = "登记"
    OTHER = "其他"


@strawberry.type(description="An administrative licence, double publicity (行政许可).")
class Licence(CreditRecord):
    decision_number: str = strawberry.field(description="决定文书号")
    category: LicenceCategory
    licence_name: str
    licence_number: str | None
    content: str
    decided_on: date
    valid_from: date
    valid_to: date | None
    issuing_organ: str
    issuing_organ_code: str | None
    reporting_department: str


@strawberry.enum(description="Severity of a penalty, which sets its publicity window.")
class Severity(Enum):
    MINOR = "轻微"
    GENERAL = "一般"
    SERIOUS = "严重"


@strawberry.enum(description="Penalty types of the Administrative Penalty Law (2021).")
class PenaltyType(Enum):
    WARNING = "警告"
    PUBLIC_CRITICISM = "通报批评"
    FINE = "罚款"
    CONFISCATION = "没收违法所得、没收非法财物"
    LICENCE_SUSPENSION = "暂扣许可证件"
    QUALIFICATION_LOWERING = "降低资质等级"
    LICENCE_REVOCATION = "吊销许可证件"
    OPERATION_RESTRICTION = "限制开展生产经营活动"
    BUSINESS_SUSPENSION = "责令停产停业"
    CLOSURE = "责令关闭"
    EMPLOYMENT_RESTRICTION = "限制从业"
    DETENTION = "行政拘留"
    OTHER = "其他"


@strawberry.type(description="An administrative penalty, double publicity (行政处罚).")
class Penalty(CreditRecord):
    decision_number: str = strawberry.field(description="决定书文号")
    subject_name: str
    violation_type: str
    facts: str
    legal_basis: str
    penalty_types: list[PenaltyType]
    fine: Decimal | None = strawberry.field(description="Fine in 万元 (10,000 CNY).")
    confiscated: Decimal | None = strawberry.field(description="Confiscation in 万元.")
    decided_on: date
    publicity_ends_on: date | None = strawberry.field(description=PUBLICITY_ENDS)
    severity: Severity
    issuing_organ: str
    issuing_organ_code: str | None
    reporting_department: str
    repaired_on: date | None = strawberry.field(default=None, description=REPAIRED_ON)


@strawberry.enum(description="Red list (守信激励) or black list (失信惩戒).")
class CreditListKind(Enum):
    RED = "红名单"
    BLACK = "黑名单"


@strawberry.type(description="An entry in a red or black list (红黑名单).")
class CreditListEntry(CreditRecord):
    kind: CreditListKind
    list_name: str
    reason: str
    listed_on: date
    listed_by: str
    expires_on: date | None
    removed_on: date | None


@strawberry.enum(description="Whether a credit commitment was kept.")
class FulfilmentStatus(Enum):
    PENDING = "履约中"
    KEPT = "已履约"
    BREACHED = "未履约"


@strawberry.type(description="A credit commitment (信用承诺).")
class CreditCommitment(CreditRecord):
    kind: str = strawberry.field(description="Commitment kind, e.g. 审批替代型.")
    matter: str
    signed_on: date
    fulfilment: FulfilmentStatus


@strawberry.enum(description="State of a credit repair application.")
class RepairStatus(Enum):
    PENDING = "受理中"
    APPROVED = "已修复"
    REJECTED = "不予修复"


@strawberry.type(description="A credit repair (信用修复) of one record.")
class CreditRepair(CreditRecord):
    record_kind: str = strawberry.field(description="Kind of record repaired, e.g. 行政处罚.")
    record_reference: str = strawberry.field(description="Decision number of the repaired record.")
    applied_on: date
    repaired_on: date | None
    status: RepairStatus
    decided_by: str


@dataclass(frozen=True, slots=True)
class Authorization:
    """An enterprise's authorization for a financial institution to see
    non-public data (信易贷授权). Internal: checked by the policy, not exposed."""

    number: str
    enterprise_uscc: str
    grantee_code: str  # USCC of the authorized institution
    grantee_name: str
    purpose: str  # a purpose code of the policy catalog
    categories: frozenset[str]  # data categories of the policy catalog
    valid_from: date
    valid_to: date
    revoked_on: date | None

    def covers(self, grantee_code: str, purpose: str, category: str, today: date) -> bool:
        """True when this authorization lets ``grantee_code`` see ``category``
        for ``purpose`` on ``today``."""
        return (
            self.grantee_code == grantee_code
            and self.purpose == purpose
            and category in self.categories
            and self.valid_from <= today <= self.valid_to
            and (self.revoked_on is None or today < self.revoked_on)
        )
