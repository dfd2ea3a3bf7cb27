"""Utilities (惠州市公用事业缴费信息中心): the city's water, electricity and
gas billing, one database for the suppliers of the three utilities.

Legacy schema (a billing vendor's design: UPPERCASE names, tables prefixed
``SDQ_``, the utility as a two-letter code, months as ``YYYYMM`` text, dates
as ``YYYYMMDD`` integers, amounts as integer fen, usage as ``DECIMAL(14,2)``):

- ``SDQ_GYS`` 供应单位: ``GYSDM`` supplier code (key), ``GYSMC`` its name.
- ``SDQ_YHZH`` 用户账户: ``GYSDM`` supplier, ``HH`` account number (户号,
  unique per supplier only: the two together are the key), ``TYSHXYDM`` the
  account holder's USCC (the gateway's key; an enterprise may hold several
  accounts), ``HM`` account name, ``YWLX`` utility code (``UTILITIES``:
  ``SF`` 水费 water, ``DF`` 电费 electricity, ``RQ`` 燃气费 gas), ``YDDZ``
  supply address.
- ``SDQ_ZD`` 账单, one row per account and billing month: ``GYSDM``, ``HH``,
  ``ZDNY`` billing month, ``YL`` usage (m³ of water or gas, kWh of
  electricity), ``YJJE`` amount due in fen, ``JFQX`` due date, ``JFRQ`` day
  the bill was paid in full (``NULL`` until then; ``0`` in the rows migrated
  from the old system), ``SJJE`` amount paid so far in fen.

A batch is one statement: the bills joined to their accounts and suppliers,
chosen by the accounts' USCCs. Bills are returned newest month first, then
by utility code, supplier and account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from connectors.base import serves
from connectors.legacy import compact_date, compact_month
from connectors.sql import KEYS, SqlConnector
from core.records.utilities import UTILITY_BILLS, Utility, UtilityBill

metadata = sa.MetaData()

suppliers = sa.Table(
    "SDQ_GYS",
    metadata,
    sa.Column("GYSDM", sa.String(10), primary_key=True),
    sa.Column("GYSMC", sa.String(100), nullable=False),
)

accounts = sa.Table(
    "SDQ_YHZH",
    metadata,
    sa.Column("GYSDM", sa.String(10), primary_key=True),
    sa.Column("HH", sa.String(20), primary_key=True),
    sa.Column("TYSHXYDM", sa.String(18), nullable=False, index=True),
    sa.Column("HM", sa.String(200), nullable=False),
    sa.Column("YWLX", sa.String(2), nullable=False),
    sa.Column("YDDZ", sa.String(300)),
)

bills = sa.Table(
    "SDQ_ZD",
    metadata,
    sa.Column("ID", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("GYSDM", sa.String(10), nullable=False),
    sa.Column("HH", sa.String(20), nullable=False),
    sa.Column("ZDNY", sa.String(6), nullable=False),
    sa.Column("YL", sa.Numeric(14, 2), nullable=False),
    sa.Column("YJJE", sa.BigInteger, nullable=False),
    sa.Column("JFQX", sa.Integer, nullable=False),
    sa.Column("JFRQ", sa.Integer),
    sa.Column("SJJE", sa.BigInteger, nullable=False),
    sa.Index("ix_SDQ_ZD_account", "GYSDM", "HH"),
)

UTILITIES = {"SF": Utility.WATER, "DF": Utility.ELECTRICITY, "RQ": Utility.GAS}



def day(value: int | None) -> date | None:
    """``20250315`` -> ``date(2025, 3, 15)``; ``None`` for ``NULL`` or ``0``
    (no date); ``ValueError`` for anything else."""
    if value is None or value == 0:
        return None
    return compact_date(str(int(value)))


def due_day(value: int | None) -> date:
    """A required date (the due date): ``ValueError`` when there is none."""
    due = day(value)
    if due is None:
        raise ValueError(f"a bill without a due date: {value!r}")
    return due


def yuan(fen: int) -> Decimal:
    """An integer amount of fen as exact yuan: ``12345`` -> ``Decimal('123.45')``."""
    return Decimal(int(fen)).scaleb(-2)


# Built once; ``fetch`` binds the batch's USCCs to ``KEYS``.
_UTILITY_BILLS = (
    sa.select(accounts.c.TYSHXYDM, accounts.c.YWLX, bills.c.HH, suppliers.c.GYSMC,
              bills.c.ZDNY, bills.c.YL, bills.c.YJJE, bills.c.JFQX, bills.c.JFRQ, bills.c.SJJE)
    .select_from(
        bills
        .join(accounts, sa.and_(bills.c.GYSDM == accounts.c.GYSDM, bills.c.HH == accounts.c.HH))
        .join(suppliers, accounts.c.GYSDM == suppliers.c.GYSDM))
    .where(accounts.c.TYSHXYDM.in_(KEYS))
    .order_by(bills.c.ZDNY.desc(), accounts.c.YWLX, bills.c.GYSDM, bills.c.HH, bills.c.ID)
)


class UtilitiesConnector(SqlConnector):
    """Monthly bills of every water, electricity and gas account of an
    enterprise, newest month first, keyed by USCC."""

    kind = "utilities"

    @serves(UTILITY_BILLS)
    async def load_utility_bills(self, usccs: Sequence[str]) -> list[list[UtilityBill]]:
        rows = await self.fetch(_UTILITY_BILLS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.TYSHXYDM,
            lambda row: UtilityBill(
                utility=UTILITIES[row.YWLX],
                account=row.HH,
                supplier=row.GYSMC,
                period=compact_month(row.ZDNY),
                usage=Decimal(row.YL),
                amount_due=yuan(row.YJJE),
                due_on=due_day(row.JFQX),
                paid_on=day(row.JFRQ),
                amount_paid=yuan(row.SJJE),
                provenance=provenance,
            ),
        )
