"""Housing provident fund centre (惠州市住房公积金管理中心): employers' monthly
contributions.

Legacy schema (the centre's core system: lowercase pinyin initials, tables
prefixed ``gjj_``; an employer is known by its unit account, the USCC only
through the account; months as ``YYYYMM`` text, amounts as ``DECIMAL(16,2)``
yuan):

- ``gjj_dwxx`` 单位信息: ``dwzh`` unit account (单位账号, the centre's key),
  ``dwmc`` unit name, ``tyshxydm`` the unit's USCC (the gateway's key; a unit
  may hold more than one account, such as a closed one and its successor),
  ``khrq`` opened on (``YYYYMMDD``), ``dwzhzt`` account status ``1`` 正常,
  ``2`` 封存, ``9`` 销户 (not read: a sealed or closed account's months remain
  its history).
- ``gjj_dwjc`` 单位缴存, one row per account and month: ``dwzh``, ``jcny``
  contribution month, ``jcrs`` contributing employees, ``sjje`` paid (the
  employer's and the employees' shares together), ``qjje`` still owed.

A batch is one statement: the monthly rows joined to their accounts, chosen
by the accounts' USCCs. Months are returned newest first (then by account).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from connectors.base import serves
from connectors.legacy import compact_month
from connectors.sql import KEYS, SqlConnector
from core.records.housing_fund import HOUSING_FUND, HousingFundMonth

metadata = sa.MetaData()

units = sa.Table(
    "gjj_dwxx",
    metadata,
    sa.Column("dwzh", sa.String(20), primary_key=True),
    sa.Column("dwmc", sa.String(200), nullable=False),
    sa.Column("tyshxydm", sa.String(18), nullable=False, index=True),
    sa.Column("khrq", sa.String(8)),
    sa.Column("dwzhzt", sa.String(1), nullable=False),
)

contributions = sa.Table(
    "gjj_dwjc",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dwzh", sa.String(20), nullable=False, index=True),
    sa.Column("jcny", sa.String(6), nullable=False),
    sa.Column("jcrs", sa.Integer, nullable=False),
    sa.Column("sjje", sa.Numeric(16, 2), nullable=False),
    sa.Column("qjje", sa.Numeric(16, 2), nullable=False),
)



def headcount(jcrs: int) -> int:
    """A number of contributing employees; ``ValueError`` when negative."""
    if int(jcrs) < 0:
        raise ValueError(f"negative number of contributing employees: {jcrs!r}")
    return int(jcrs)


# Built once; ``fetch`` binds the batch's USCCs to ``KEYS``.
_HOUSING_FUND = (
    sa.select(units.c.tyshxydm, contributions.c.jcny, contributions.c.jcrs,
              contributions.c.sjje, contributions.c.qjje)
    .select_from(contributions.join(units, contributions.c.dwzh == units.c.dwzh))
    .where(units.c.tyshxydm.in_(KEYS))
    .order_by(contributions.c.jcny.desc(), contributions.c.dwzh, contributions.c.id)
)


class HousingFundConnector(SqlConnector):
    """Monthly contributions of every unit account of an enterprise, newest
    month first, keyed by USCC."""

    kind = "housing_fund"

    @serves(HOUSING_FUND)
    async def load_housing_fund(self, usccs: Sequence[str]) -> list[list[HousingFundMonth]]:
        rows = await self.fetch(_HOUSING_FUND, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.tyshxydm,
            lambda row: HousingFundMonth(
                period=compact_month(row.jcny),
                contributing_employees=headcount(row.jcrs),
                amount_paid=Decimal(row.sjje),
                arrears=Decimal(row.qjje),
                provenance=provenance,
            ),
        )
