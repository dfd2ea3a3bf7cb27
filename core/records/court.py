"""Courts (人民法院): the list of dishonest judgment debtors."""

from __future__ import annotations

from datetime import date
from enum import Enum

import strawberry

from core.records.base import CreditRecord, Key, RecordType
from core.masking import masked_identifier
from core.scalars import USCC


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


DISHONEST_DEBTORS = RecordType(
    "dishonest_debtors", DishonestDebtorRecord, field="dishonestDebtorRecords",
    fields={Key.USCC: "Dishonest judgment debtor records.",
            Key.RESIDENT_ID: "Dishonest judgment debtor records."},
)
