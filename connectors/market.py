"""Market regulation (市场监督管理局): registrations, abnormal operations list,
serious violation list.

Legacy schema (the bureau's registration system, pinyin column names, dates
as ``YYYYMMDD`` text, status and reasons as one-character codes):

- ``t_qydj`` 企业登记: ``tyshxydm`` (USCC, key), ``qymc`` name, ``fddbr`` legal
  representative, ``fddbr_zjhm`` his ID number, ``qylx`` entity type code,
  ``clrq`` established, ``zczb`` capital in 万元, ``djzt`` status code,
  ``zs`` address, ``jyfw`` business scope, ``djjg`` registration organ.
- ``t_jyyc`` 经营异常名录: ``lryy`` reason code 1-4, ``lrrq``/``lrjg`` listed
  on/by, ``ycrq``/``ycjg``/``ycyy`` removed on/by/why.
- ``t_yzwf`` 严重违法失信名单: ``lrsy`` basis, ``lrrq``/``lrjg``, ``ycrq``/``ycjg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from connectors.legacy import compact_date
from connectors.base import serves
from connectors.sql import SqlConnector, by_keys
from core.records.base import Provenance
from core.records.market import (
    ABNORMAL_OPERATIONS,
    LEGAL_REPRESENTATIVE_OF,
    REGISTRATION,
    SERIOUS_VIOLATIONS,
    AbnormalOperationListing,
    AbnormalOperationReason,
    EntityStatus,
    Registration,
    SeriousViolationListing,
)

metadata = sa.MetaData()

registrations = sa.Table(
    "t_qydj",
    metadata,
    sa.Column("tyshxydm", sa.String(18), primary_key=True),
    sa.Column("qymc", sa.String(200), nullable=False),
    sa.Column("fddbr", sa.String(50)),
    sa.Column("fddbr_zjhm", sa.String(18)),
    sa.Column("qylx", sa.String(4), nullable=False),
    sa.Column("clrq", sa.String(8)),
    sa.Column("zczb", sa.Numeric(18, 4)),
    sa.Column("djzt", sa.String(1), nullable=False),
    sa.Column("zs", sa.String(300)),
    sa.Column("jyfw", sa.Text),
    sa.Column("djjg", sa.String(100)),
    sa.Index("ix_t_qydj_qymc", "qymc"),
    sa.Index("ix_t_qydj_fddbr_zjhm", "fddbr_zjhm"),
)

abnormal_operations = sa.Table(
    "t_jyyc",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tyshxydm", sa.String(18), nullable=False, index=True),
    sa.Column("lryy", sa.String(1), nullable=False),
    sa.Column("lrrq", sa.String(8), nullable=False),
    sa.Column("lrjg", sa.String(100), nullable=False),
    sa.Column("ycrq", sa.String(8)),
    sa.Column("ycjg", sa.String(100)),
    sa.Column("ycyy", sa.String(200)),
)

serious_violations = sa.Table(
    "t_yzwf",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tyshxydm", sa.String(18), nullable=False, index=True),
    sa.Column("lrsy", sa.String(300), nullable=False),
    sa.Column("lrrq", sa.String(8), nullable=False),
    sa.Column("lrjg", sa.String(100), nullable=False),
    sa.Column("ycrq", sa.String(8)),
    sa.Column("ycjg", sa.String(100)),
)

ENTITY_TYPES = {
    "1100": "有限责任公司",
    "1200": "股份有限公司",
    "2100": "全民所有制企业",
    "3100": "集体所有制企业",
    "4100": "合伙企业",
    "4500": "个人独资企业",
    "5100": "外商投资企业",
    "9100": "个体工商户",
    "9500": "农民专业合作社",
}
STATUS = {"1": EntityStatus.OPERATING, "2": EntityStatus.REVOKED,
          "3": EntityStatus.CANCELLED, "4": EntityStatus.MOVED_OUT}
ABNORMAL_REASONS = {
    "1": AbnormalOperationReason.NO_ANNUAL_REPORT,
    "2": AbnormalOperationReason.NOT_DISCLOSED_BY_DEADLINE,
    "3": AbnormalOperationReason.FALSE_DISCLOSURE,
    "4": AbnormalOperationReason.UNREACHABLE_AT_ADDRESS,
}


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_REGISTRATIONS = by_keys(registrations, registrations.c.tyshxydm)
_REGISTRATIONS_BY_REPRESENTATIVE = by_keys(
    registrations, registrations.c.fddbr_zjhm, registrations.c.tyshxydm
)
_ABNORMAL_OPERATIONS = by_keys(abnormal_operations, abnormal_operations.c.tyshxydm,
                               abnormal_operations.c.lrrq, abnormal_operations.c.id)
_SERIOUS_VIOLATIONS = by_keys(serious_violations, serious_violations.c.tyshxydm,
                              serious_violations.c.lrrq, serious_violations.c.id)


class MarketRegulationConnector(SqlConnector):
    """Registrations and the two market-regulation lists, keyed by USCC."""

    kind = "market"

    @staticmethod
    def _registration(row: Any, provenance: Provenance) -> Registration:
        return Registration(
            uscc=row.tyshxydm,
            name=row.qymc,
            legal_representative=row.fddbr,
            legal_representative_id_number=row.fddbr_zjhm,
            entity_type=ENTITY_TYPES[row.qylx],
            established_on=compact_date(row.clrq),
            registered_capital=None if row.zczb is None else Decimal(row.zczb),
            status=STATUS[row.djzt],
            address=row.zs,
            business_scope=row.jyfw,
            registration_authority=row.djjg,
            provenance=provenance,
        )

    @serves(REGISTRATION)
    async def load_registrations(self, usccs: Sequence[str]) -> list[Registration | None]:
        rows = await self.fetch(_REGISTRATIONS, usccs)
        provenance = self.provenance()
        return self.single(
            usccs, rows, lambda row: row.tyshxydm, lambda row: self._registration(row, provenance)
        )

    @serves(LEGAL_REPRESENTATIVE_OF)
    async def load_registrations_by_representative(
        self, id_numbers: Sequence[str]
    ) -> list[list[Registration]]:
        rows = await self.fetch(_REGISTRATIONS_BY_REPRESENTATIVE, id_numbers)
        provenance = self.provenance()
        return self.grouped(
            id_numbers, rows, lambda row: row.fddbr_zjhm,
            lambda row: self._registration(row, provenance),
        )

    async def search_by_name(self, text: str, after: str | None, limit: int) -> list[Registration]:
        """At most ``limit`` registrations whose name contains ``text``,
        ordered by USCC, starting after the USCC ``after``. ``%``, ``_`` and
        the escape character are literal (``ESCAPE '/'`` on every engine).
        No name holds a NUL: SQLite's LIKE would read its pattern only up to
        one (so match every name), PostgreSQL refuse it, so none is asked."""
        if "\x00" in text:
            return []
        t = registrations
        statement = (
            sa.select(t)
            .where(t.c.qymc.contains(text, autoescape=True))
            .order_by(t.c.tyshxydm)
            .limit(limit)
        )
        if after is not None:
            statement = statement.where(t.c.tyshxydm > after)
        rows = await self.fetch(statement)
        provenance = self.provenance()
        return self.mapped(rows, lambda row: self._registration(row, provenance))

    @serves(ABNORMAL_OPERATIONS)
    async def load_abnormal_operations(
        self, usccs: Sequence[str]
    ) -> list[list[AbnormalOperationListing]]:
        rows = await self.fetch(_ABNORMAL_OPERATIONS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.tyshxydm,
            lambda row: AbnormalOperationListing(
                reason=ABNORMAL_REASONS[row.lryy],
                listed_on=compact_date(row.lrrq),
                listed_by=row.lrjg,
                removed_on=compact_date(row.ycrq),
                removed_by=row.ycjg,
                removal_reason=row.ycyy,
                provenance=provenance,
            ),
        )

    @serves(SERIOUS_VIOLATIONS)
    async def load_serious_violations(
        self, usccs: Sequence[str]
    ) -> list[list[SeriousViolationListing]]:
        rows = await self.fetch(_SERIOUS_VIOLATIONS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.tyshxydm,
            lambda row: SeriousViolationListing(
                basis=row.lrsy,
                listed_on=compact_date(row.lrrq),
                listed_by=row.lrjg,
                removed_on=compact_date(row.ycrq),
                removed_by=row.ycjg,
                provenance=provenance,
            ),
        )
