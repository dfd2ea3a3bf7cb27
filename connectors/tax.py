"""Tax bureau (国家税务总局惠州市税务局): tax credit ratings and tax arrears announcements.

Legacy schema (an Oracle-era design: UPPERCASE names, tables prefixed ``SW_``,
dates as ISO ``YYYY-MM-DD`` text, amounts in yuan):

- ``SW_NSXYPJ`` 纳税信用评价: ``NSRSBH`` taxpayer id (USCC, key), ``PJND``
  assessment year, ``XYJB`` grade letter A/B/M/C/D, ``PF`` score (none when
  the grade was assigned directly), ``FBRQ`` published on.
- ``SW_QSGG`` 欠税公告: ``SZ`` tax type, ``QSJE`` arrears in yuan, ``SKSSQZ``
  end of the tax period, ``GGRQ`` announced on, ``ZGSWJG`` competent tax authority.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from connectors.legacy import iso_date
from connectors.base import serves
from connectors.sql import SqlConnector, by_keys
from core.records.tax import TAX_ARREARS, TAX_RATINGS, TaxArrear, TaxCreditGrade, TaxRating

metadata = sa.MetaData()

ratings = sa.Table(
    "SW_NSXYPJ",
    metadata,
    sa.Column("ID", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("NSRSBH", sa.String(20), nullable=False, index=True),
    sa.Column("PJND", sa.Integer, nullable=False),
    sa.Column("XYJB", sa.String(1), nullable=False),
    sa.Column("PF", sa.Numeric(5, 2)),
    sa.Column("FBRQ", sa.String(10), nullable=False),
)

arrears = sa.Table(
    "SW_QSGG",
    metadata,
    sa.Column("ID", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("NSRSBH", sa.String(20), nullable=False, index=True),
    sa.Column("SZ", sa.String(50), nullable=False),
    sa.Column("QSJE", sa.Numeric(18, 2), nullable=False),
    sa.Column("SKSSQZ", sa.String(10)),
    sa.Column("GGRQ", sa.String(10), nullable=False),
    sa.Column("ZGSWJG", sa.String(100), nullable=False),
)

GRADES = {
    "A": TaxCreditGrade.A,
    "B": TaxCreditGrade.B,
    "M": TaxCreditGrade.M,
    "C": TaxCreditGrade.C,
    "D": TaxCreditGrade.D,
}


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_TAX_RATINGS = by_keys(ratings, ratings.c.NSRSBH, ratings.c.PJND.desc(), ratings.c.ID)
_TAX_ARREARS = by_keys(arrears, arrears.c.NSRSBH, arrears.c.GGRQ.desc(), arrears.c.ID)


class TaxConnector(SqlConnector):
    """Tax credit ratings (newest year first) and announced arrears (newest
    announcement first), keyed by USCC."""

    kind = "tax"

    @serves(TAX_RATINGS)
    async def load_tax_ratings(self, usccs: Sequence[str]) -> list[list[TaxRating]]:
        rows = await self.fetch(_TAX_RATINGS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.NSRSBH,
            lambda row: TaxRating(
                year=int(row.PJND),
                grade=GRADES[row.XYJB],
                score=None if row.PF is None else Decimal(row.PF),
                published_on=iso_date(row.FBRQ),
                provenance=provenance,
            ),
        )

    @serves(TAX_ARREARS)
    async def load_tax_arrears(self, usccs: Sequence[str]) -> list[list[TaxArrear]]:
        rows = await self.fetch(_TAX_ARREARS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.NSRSBH,
            lambda row: TaxArrear(
                tax_type=row.SZ,
                amount=Decimal(row.QSJE),
                period_end=iso_date(row.SKSSQZ),
                announced_on=iso_date(row.GGRQ),
                tax_authority=row.ZGSWJG,
                provenance=provenance,
            ),
        )
