"""Market regulation (市场监督管理局): registrations, the abnormal operations list, the serious violation list."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, RecordType
from core.masking import masked_identifier
from core.scalars import USCC


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


REGISTRATION = RecordType(
    "registration", Registration, many=False, field="registration",
    fields={Key.USCC: "Registration (market regulation); null if none is on record."},
)
ABNORMAL_OPERATIONS = RecordType(
    "abnormal_operations", AbnormalOperationListing, field="abnormalOperations",
    fields={Key.USCC: "Abnormal operations list entries."},
)
SERIOUS_VIOLATIONS = RecordType(
    "serious_violations", SeriousViolationListing, field="seriousViolations",
    fields={Key.USCC: "Serious violation list entries."},
)
#: Registrations of the organizations whose legal representative a person
#: is: internal, ``Person.legalRepresentativeOf`` turns them into entities.
LEGAL_REPRESENTATIVE_OF = RecordType(
    "legal_representative_of", Registration, keys=(Key.RESIDENT_ID,),
)
