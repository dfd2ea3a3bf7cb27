"""City credit office (惠州市发展和改革局, 市公共信用信息管理系统): the
double-publicity records every department reports, red and black lists,
credit commitments and credit repairs.

Legacy schema (pinyin column names, dates as ``YYYYMMDD`` text, categories
and states as codes):

- ``xy_xzxk`` 行政许可: ``xdr_dm`` USCC (key), ``xkwsh`` decision number,
  ``xklb`` category 01-06, ``xkzsmc``/``xkbh``/``xknr`` licence name, number,
  content, ``xkjdrq``/``yxqz``/``yxqzhi`` decided, valid from, valid to,
  ``xkjg``/``xkjgdm`` organ and its USCC, ``sjly`` reporting department.
- ``xy_xzcf`` 行政处罚: ``xdr_dm`` USCC or resident ID (key), ``cfjdsh``
  decision number, ``wflx``/``wfss``/``cfyj`` violation type, facts, basis,
  ``cflb`` comma-separated penalty type codes 01-13, ``fkje``/``mswfsd`` fine
  and confiscation in 万元, ``cfjdrq`` decided, ``gsjzq`` publicity end,
  ``yzcd`` severity 1-3, ``cfjg``/``cfjgdm`` organ, ``sjly``.
- ``xy_hhmd`` 红黑名单: ``dm`` USCC, ``mdlx`` R/B, ``mdmc`` list, ``lryy`` reason,
  ``lrrq`` listed, ``rdjg`` organ, ``yxqz`` expiry, ``ycrq`` removal.
- ``xy_xycn`` 信用承诺: ``dm``, ``cnlx`` kind, ``cnsx`` matter, ``qsrq`` signed,
  ``lxzt`` fulfilment 0-2.
- ``xy_xyxf`` 信用修复: ``dm``, ``xfdxlx`` kind of record, ``xfdxbh`` its
  decision number, ``sqrq`` applied, ``xfrq`` repaired, ``xfzt`` status 0-2,
  ``xfjg`` deciding organ.
- ``xy_sqxx`` 授权信息 (信易贷授权, internal: read by the policy, never
  exposed): ``dm`` enterprise USCC (key), ``sqbh`` authorization number,
  ``bsqjg_dm``/``bsqjg_mc`` grantee institution's USCC and name, ``sqyt``
  purpose code (``03`` 融资授信), ``sjlb`` comma-separated data category
  codes (``SW`` tax, ``SB`` social insurance, ``HB`` environment; which
  purpose and categories they name is the policy catalog's business),
  ``qsrq``/``jzrq`` valid from/to (inclusive), ``cxrq`` revoked.

Every record type is returned newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors.legacy import compact_date
from connectors.base import serves
from connectors.sql import SqlConnector, by_keys
from core.records.base import Provenance
from core.records.credit_office import (
    AUTHORIZATIONS,
    COMMITMENTS,
    CREDIT_LISTS,
    LICENCES,
    PENALTIES,
    REPAIRS,
    Authorization,
    CreditCommitment,
    CreditListEntry,
    CreditListKind,
    CreditRepair,
    FulfilmentStatus,
    Licence,
    LicenceCategory,
    Penalty,
    PenaltyType,
    RepairStatus,
    Severity,
)

metadata = sa.MetaData()

licences = sa.Table(
    "xy_xzxk",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("xdr_mc", sa.String(200), nullable=False),
    sa.Column("xdr_dm", sa.String(18), nullable=False, index=True),
    sa.Column("xkwsh", sa.String(100), nullable=False),
    sa.Column("xklb", sa.String(2), nullable=False),
    sa.Column("xkzsmc", sa.String(200), nullable=False),
    sa.Column("xkbh", sa.String(100)),
    sa.Column("xknr", sa.Text, nullable=False),
    sa.Column("xkjdrq", sa.String(8), nullable=False),
    sa.Column("yxqz", sa.String(8), nullable=False),
    sa.Column("yxqzhi", sa.String(8)),
    sa.Column("xkjg", sa.String(100), nullable=False),
    sa.Column("xkjgdm", sa.String(18)),
    sa.Column("sjly", sa.String(100), nullable=False),
)

penalties = sa.Table(
    "xy_xzcf",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("xdr_mc", sa.String(200), nullable=False),
    sa.Column("xdr_dm", sa.String(18), nullable=False, index=True),
    sa.Column("cfjdsh", sa.String(100), nullable=False),
    sa.Column("wflx", sa.String(200), nullable=False),
    sa.Column("wfss", sa.Text, nullable=False),
    sa.Column("cfyj", sa.Text, nullable=False),
    sa.Column("cflb", sa.String(60), nullable=False),
    sa.Column("fkje", sa.Numeric(18, 6)),
    sa.Column("mswfsd", sa.Numeric(18, 6)),
    sa.Column("cfjdrq", sa.String(8), nullable=False),
    sa.Column("gsjzq", sa.String(8)),
    sa.Column("yzcd", sa.String(1), nullable=False),
    sa.Column("cfjg", sa.String(100), nullable=False),
    sa.Column("cfjgdm", sa.String(18)),
    sa.Column("sjly", sa.String(100), nullable=False),
)

credit_lists = sa.Table(
    "xy_hhmd",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dm", sa.String(18), nullable=False, index=True),
    sa.Column("mdlx", sa.String(1), nullable=False),
    sa.Column("mdmc", sa.String(200), nullable=False),
    sa.Column("lryy", sa.String(300), nullable=False),
    sa.Column("lrrq", sa.String(8), nullable=False),
    sa.Column("rdjg", sa.String(100), nullable=False),
    sa.Column("yxqz", sa.String(8)),
    sa.Column("ycrq", sa.String(8)),
)

commitments = sa.Table(
    "xy_xycn",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dm", sa.String(18), nullable=False, index=True),
    sa.Column("cnlx", sa.String(20), nullable=False),
    sa.Column("cnsx", sa.String(300), nullable=False),
    sa.Column("qsrq", sa.String(8), nullable=False),
    sa.Column("lxzt", sa.String(1), nullable=False),
)

repairs = sa.Table(
    "xy_xyxf",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dm", sa.String(18), nullable=False, index=True),
    sa.Column("xfdxlx", sa.String(20), nullable=False),
    sa.Column("xfdxbh", sa.String(100), nullable=False, index=True),
    sa.Column("sqrq", sa.String(8), nullable=False),
    sa.Column("xfrq", sa.String(8)),
    sa.Column("xfzt", sa.String(1), nullable=False),
    sa.Column("xfjg", sa.String(100), nullable=False),
)

authorizations = sa.Table(
    "xy_sqxx",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sqbh", sa.String(50), nullable=False),
    sa.Column("dm", sa.String(18), nullable=False, index=True),
    sa.Column("bsqjg_dm", sa.String(18), nullable=False),
    sa.Column("bsqjg_mc", sa.String(200), nullable=False),
    sa.Column("sqyt", sa.String(2), nullable=False),
    sa.Column("sjlb", sa.String(60), nullable=False),
    sa.Column("qsrq", sa.String(8), nullable=False),
    sa.Column("jzrq", sa.String(8), nullable=False),
    sa.Column("cxrq", sa.String(8)),
)

LICENCE_CATEGORIES = {
    "01": LicenceCategory.ORDINARY,
    "02": LicenceCategory.FRANCHISE,
    "03": LicenceCategory.RECOGNITION,
    "04": LicenceCategory.APPROVAL,
    "05": LicenceCategory.REGISTRATION,
    "06": LicenceCategory.OTHER,
}
PENALTY_TYPES = {
    "01": PenaltyType.WARNING,
    "02": PenaltyType.PUBLIC_CRITICISM,
    "03": PenaltyType.FINE,
    "04": PenaltyType.CONFISCATION,
    "05": PenaltyType.LICENCE_SUSPENSION,
    "06": PenaltyType.QUALIFICATION_LOWERING,
    "07": PenaltyType.LICENCE_REVOCATION,
    "08": PenaltyType.OPERATION_RESTRICTION,
    "09": PenaltyType.BUSINESS_SUSPENSION,
    "10": PenaltyType.CLOSURE,
    "11": PenaltyType.EMPLOYMENT_RESTRICTION,
    "12": PenaltyType.DETENTION,
    "13": PenaltyType.OTHER,
}
SEVERITIES = {"1": Severity.MINOR, "2": Severity.GENERAL, "3": Severity.SERIOUS}
LIST_KINDS = {"R": CreditListKind.RED, "B": CreditListKind.BLACK}
FULFILMENT = {
    "0": FulfilmentStatus.PENDING, "1": FulfilmentStatus.KEPT, "2": FulfilmentStatus.BREACHED,
}
REPAIR_STATUS = {"0": RepairStatus.PENDING, "1": RepairStatus.APPROVED, "2": RepairStatus.REJECTED}


def _amount(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _required_date(value: str | None) -> date:
    """A compact date that must be present (an empty one is unreadable data)."""
    day = compact_date(value)
    if day is None:
        raise ValueError("missing date")
    return day


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_LICENCES = by_keys(licences, licences.c.xdr_dm, licences.c.xkjdrq.desc(), licences.c.id.desc())
_PENALTIES = by_keys(
    penalties, penalties.c.xdr_dm, penalties.c.cfjdrq.desc(), penalties.c.id.desc()
)
_CREDIT_LISTS = by_keys(
    credit_lists, credit_lists.c.dm, credit_lists.c.lrrq.desc(), credit_lists.c.id.desc()
)
_COMMITMENTS = by_keys(
    commitments, commitments.c.dm, commitments.c.qsrq.desc(), commitments.c.id.desc()
)
_REPAIRS = by_keys(repairs, repairs.c.dm, repairs.c.sqrq.desc(), repairs.c.id.desc())
_AUTHORIZATIONS = by_keys(
    authorizations, authorizations.c.dm, authorizations.c.qsrq.desc(), authorizations.c.id.desc()
)


class CreditOfficeConnector(SqlConnector):
    """Licences, penalties, red/black lists,
    commitments, repairs and financing authorizations, keyed by USCC;
    penalties also by resident ID."""

    kind = "credit_office"

    @serves(LICENCES)
    async def load_licences(self, usccs: Sequence[str]) -> list[list[Licence]]:
        rows = await self.fetch(_LICENCES, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.xdr_dm,
            lambda row: Licence(
                decision_number=row.xkwsh,
                category=LICENCE_CATEGORIES[row.xklb],
                licence_name=row.xkzsmc,
                licence_number=row.xkbh,
                content=row.xknr,
                decided_on=compact_date(row.xkjdrq),
                valid_from=compact_date(row.yxqz),
                valid_to=compact_date(row.yxqzhi),
                issuing_organ=row.xkjg,
                issuing_organ_code=row.xkjgdm,
                reporting_department=row.sjly,
                provenance=provenance,
            ),
        )

    @staticmethod
    def _penalty(row: Any, provenance: Provenance) -> Penalty:
        return Penalty(
            decision_number=row.cfjdsh,
            subject_name=row.xdr_mc,
            violation_type=row.wflx,
            facts=row.wfss,
            legal_basis=row.cfyj,
            penalty_types=[PENALTY_TYPES[code.strip()] for code in row.cflb.split(",")],
            fine=_amount(row.fkje),
            confiscated=_amount(row.mswfsd),
            decided_on=compact_date(row.cfjdrq),
            publicity_ends_on=compact_date(row.gsjzq),
            severity=SEVERITIES[row.yzcd],
            issuing_organ=row.cfjg,
            issuing_organ_code=row.cfjgdm,
            reporting_department=row.sjly,
            provenance=provenance,
        )

    @serves(PENALTIES)
    async def load_penalties(self, codes: Sequence[str]) -> list[list[Penalty]]:
        """Penalties, without their repair: the gateway links repairs of
        any department's records (``repairs``) by decision number."""
        rows = await self.fetch(_PENALTIES, codes)
        provenance = self.provenance()
        return self.grouped(
            codes, rows, lambda row: row.xdr_dm, lambda row: self._penalty(row, provenance)
        )

    @serves(CREDIT_LISTS)
    async def load_credit_lists(self, usccs: Sequence[str]) -> list[list[CreditListEntry]]:
        rows = await self.fetch(_CREDIT_LISTS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.dm,
            lambda row: CreditListEntry(
                kind=LIST_KINDS[row.mdlx],
                list_name=row.mdmc,
                reason=row.lryy,
                listed_on=compact_date(row.lrrq),
                listed_by=row.rdjg,
                expires_on=compact_date(row.yxqz),
                removed_on=compact_date(row.ycrq),
                provenance=provenance,
            ),
        )

    @serves(COMMITMENTS)
    async def load_commitments(self, usccs: Sequence[str]) -> list[list[CreditCommitment]]:
        rows = await self.fetch(_COMMITMENTS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.dm,
            lambda row: CreditCommitment(
                kind=row.cnlx,
                matter=row.cnsx,
                signed_on=compact_date(row.qsrq),
                fulfilment=FULFILMENT[row.lxzt],
                provenance=provenance,
            ),
        )

    @serves(REPAIRS)
    async def load_repairs(self, usccs: Sequence[str]) -> list[list[CreditRepair]]:
        rows = await self.fetch(_REPAIRS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.dm,
            lambda row: CreditRepair(
                record_kind=row.xfdxlx,
                record_reference=row.xfdxbh,
                applied_on=compact_date(row.sqrq),
                repaired_on=compact_date(row.xfrq),
                status=REPAIR_STATUS[row.xfzt],
                decided_by=row.xfjg,
                provenance=provenance,
            ),
        )

    @serves(AUTHORIZATIONS)
    async def load_authorizations(self, usccs: Sequence[str]) -> list[list[Authorization]]:
        """Every authorization an enterprise granted, newest first, including
        expired and revoked ones: ``Authorization.covers`` decides for a day.
        Purpose and category codes are passed on as the source writes them
        (the policy catalog maps them; a code it does not know grants
        nothing). A row with a missing or unreadable date is logged and left
        out: it grants nothing, and the enterprise's other authorizations
        still apply."""
        rows = await self.fetch(_AUTHORIZATIONS, usccs)
        return self.grouped(
            usccs, rows, lambda row: row.dm,
            lambda row: Authorization(
                number=row.sqbh,
                enterprise_uscc=row.dm,
                grantee_code=row.bsqjg_dm.strip().upper(),
                grantee_name=row.bsqjg_mc,
                purpose_code=row.sqyt.strip(),
                category_codes=frozenset(code.strip() for code in row.sjlb.split(",")
                                         if code.strip()),
                valid_from=_required_date(row.qsrq),
                valid_to=_required_date(row.jzrq),
                revoked_on=compact_date(row.cxrq),
            ),
            skip_unmappable=True,
        )
