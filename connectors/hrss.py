"""Human resources and social security (惠州市人力资源和社会保障局): monthly
social-insurance contributions of employers.

Legacy schema (lowercase, tables prefixed ``si_``, months as ``YYYYMM`` text,
amounts as integer fen):

- ``si_jfxx`` 缴费信息: ``dwbh`` unit code (USCC, key), ``jfny`` contribution
  month, ``cbrs`` insured headcount, ``sjje`` amount paid in fen, ``qjje``
  arrears in fen.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from connectors.base import serves
from connectors.legacy import compact_month
from connectors.sql import SqlConnector, by_keys
from core.records.hrss import SOCIAL_INSURANCE, SocialInsuranceMonth

metadata = sa.MetaData()

contributions = sa.Table(
    "si_jfxx",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dwbh", sa.String(20), nullable=False, index=True),
    sa.Column("jfny", sa.String(6), nullable=False),
    sa.Column("cbrs", sa.Integer, nullable=False),
    sa.Column("sjje", sa.BigInteger, nullable=False),
    sa.Column("qjje", sa.BigInteger, nullable=False),
)



def yuan(fen: int) -> Decimal:
    """An integer amount of fen as exact yuan: ``12345`` -> ``Decimal('123.45')``."""
    return Decimal(int(fen)).scaleb(-2)


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_SOCIAL_INSURANCE = by_keys(
    contributions, contributions.c.dwbh, contributions.c.jfny.desc(), contributions.c.id
)


class SocialInsuranceConnector(SqlConnector):
    """Monthly contributions, newest month first, keyed by USCC."""

    kind = "hrss"

    @serves(SOCIAL_INSURANCE)
    async def load_social_insurance(
        self, usccs: Sequence[str]
    ) -> list[list[SocialInsuranceMonth]]:
        rows = await self.fetch(_SOCIAL_INSURANCE, usccs)
        provenance = self.provenance()
        return self.grouped(
            usccs, rows, lambda row: row.dwbh,
            lambda row: SocialInsuranceMonth(
                period=compact_month(row.jfny),
                insured_headcount=int(row.cbrs),
                amount_paid=yuan(row.sjje),
                arrears=yuan(row.qjje),
                provenance=provenance,
            ),
        )
