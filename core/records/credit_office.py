"""City credit office (公共信用信息管理系统): double publicity, red and black lists, commitments, repairs, financing authorizations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, PUBLICITY_ENDS, REPAIRED_ON, RecordType
from core.scalars import USCC


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
    non-public data (信易贷授权). Internal: checked by the policy, not exposed.
    Its purpose and data categories are the source's own codes: the policy
    catalog says which purpose and categories they name."""

    number: str
    enterprise_uscc: str
    grantee_code: str  # USCC of the authorized institution
    grantee_name: str
    purpose_code: str  # e.g. "03" (融资授信)
    category_codes: frozenset[str]  # e.g. {"SW", "SB"}
    valid_from: date
    valid_to: date
    revoked_on: date | None

    def covers(self, grantee_code: str, purpose_codes: frozenset[str],
               category_codes: frozenset[str], today: date) -> bool:
        """True when this authorization lets ``grantee_code`` see a data
        category (one of ``category_codes``) for a purpose (one of
        ``purpose_codes``) on ``today``."""
        return (
            self.grantee_code == grantee_code
            and self.purpose_code in purpose_codes
            and not self.category_codes.isdisjoint(category_codes)
            and self.valid_from <= today <= self.valid_to
            and (self.revoked_on is None or today < self.revoked_on)
        )


LICENCES = RecordType(
    "licences", Licence, field="licences",
    fields={Key.USCC: "Administrative licences (double publicity)."},
)
PENALTIES = RecordType(
    "penalties", Penalty, field="penalties",
    fields={Key.USCC: "Administrative penalties (double publicity), newest first.",
            Key.RESIDENT_ID: "Administrative penalties against the person, newest first."},
)
CREDIT_LISTS = RecordType(
    "credit_lists", CreditListEntry, field="creditLists",
    fields={Key.USCC: "Red and black list entries."},
)
COMMITMENTS = RecordType(
    "commitments", CreditCommitment, field="commitments", fields={Key.USCC: "Credit commitments."},
)
#: Repairs are also linked by the gateway to the records they repair
#: (``gateway.policy.PublicityWindow``).
REPAIRS = RecordType(
    "repairs", CreditRepair, field="repairs", fields={Key.USCC: "Credit repairs."},
)
#: Internal: the policy reads them to check a subject's authorization.
AUTHORIZATIONS = RecordType("authorizations", Authorization)
