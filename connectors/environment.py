"""Ecology and environment (惠州市生态环境局): environmental credit ratings and
environmental administrative penalties.

Legacy schema (lowercase, tables prefixed ``hb_``, grades as codes, dates as
``YYYYMMDD`` text):

- ``hb_xypj`` 环境信用评价: ``qydm`` USCC (key), ``pjnd`` year, ``pjdj`` grade
  code 1-5 (环保诚信 … 环保严重失信), ``pjjg`` rating organ.
- ``hb_xzcf`` 环境行政处罚: ``cfwh`` decision number, ``wfxw`` violation,
  ``cfnr`` penalty content, ``fkje`` fine in 万元, ``cfrq`` decided on,
  ``cfjg`` deciding organ.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from connectors.legacy import compact_date
from connectors.base import serves
from connectors.sql import SqlConnector, by_keys
from core.records.environment import (
    ENVIRONMENTAL_PENALTIES,
    ENVIRONMENTAL_RATINGS,
    EnvironmentalCreditGrade,
    EnvironmentalPenalty,
    EnvironmentalRating,
)

metadata = sa.MetaData()

ratings = sa.Table(
    "hb_xypj",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("qydm", sa.String(18), nullable=False, index=True),
    sa.Column("pjnd", sa.Integer, nullable=False),
    sa.Column("pjdj", sa.String(1), nullable=False),
    sa.Column("pjjg", sa.String(100), nullable=False),
)

penalties = sa.Table(
    "hb_xzcf",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("qydm", sa.String(18), nullable=False, index=True),
    sa.Column("cfwh", sa.String(100), nullable=False),
    sa.Column("wfxw", sa.String(500), nullable=False),
    sa.Column("cfnr", sa.String(500), nullable=False),
    sa.Column("fkje", sa.Numeric(18, 4)),
    sa.Column("cfrq", sa.String(8), nullable=False),
    sa.Column("cfjg", sa.String(100), nullable=False),
)

GRADES = {
    "1": EnvironmentalCreditGrade.GREEN,
    "2": EnvironmentalCreditGrade.BLUE,
    "3": EnvironmentalCreditGrade.YELLOW,
    "4": EnvironmentalCreditGrade.RED,
    "5": EnvironmentalCreditGrade.BLACK,
}


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_ENVIRONMENTAL_RATINGS = by_keys(ratings, ratings.c.qydm, ratings.c.pjnd.desc(), ratings.c.id)
_ENVIRONMENTAL_PENALTIES = by_keys(
    penalties, penalties.c.qydm, penalties.c.cfrq.desc(), penalties.c.id.desc()
)


class EnvironmentConnector(SqlConnector):
    """Environmental credit ratings (newest year first) and penalties (newest
    decision first), keyed by USCC."""

    kind = "environment"

    @serves(ENVIRONMENTAL_RATINGS)
    async def load_environmental_ratings(
        self, usccs: Sequence[str]
    ) -> list[list[EnvironmentalRating]]:
        rows = await self.fetch(_ENVIRONMENTAL_RATINGS, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.qydm,
            lambda row: EnvironmentalRating(
                year=int(row.pjnd),
                grade=GRADES[row.pjdj],
                rated_by=row.pjjg,
                provenance=provenance,
            ),
        )

    @serves(ENVIRONMENTAL_PENALTIES)
    async def load_environmental_penalties(
        self, usccs: Sequence[str]
    ) -> list[list[EnvironmentalPenalty]]:
        rows = await self.fetch(_ENVIRONMENTAL_PENALTIES, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.qydm,
            lambda row: EnvironmentalPenalty(
                decision_number=row.cfwh,
                violation=row.wfxw,
                penalty=row.cfnr,
                fine=None if row.fkje is None else Decimal(row.fkje),
                decided_on=compact_date(row.cfrq),
                decided_by=row.cfjg,
                provenance=provenance,
            ),
        )
