"""Intermediate people's court (惠州市中级人民法院): dishonest judgment debtors.

Legacy schema (the court's enforcement system, pinyin column names, dates as
epoch seconds read in Beijing time, kinds and states as one-character codes):

- ``fy_sxbzxr`` 失信被执行人: ``ah`` case code, ``bzxrmc`` name, ``bzxrlx``
  subject type (1 organization, 2 person), ``zjhm`` USCC or resident ID (key),
  ``fddbr`` legal representative (organizations), ``xb`` sex and ``nl`` age
  (persons), ``zxfy`` enforcing court, ``zxyjwh``/``zxyjdw`` basis document
  and its issuer, ``flwsqdyw`` duty, ``lxqk`` performance code, ``sxxwqx``
  dishonest behaviour, ``lasj`` filed, ``fbsj`` published, ``jzrq`` expiry,
  ``ycrq`` removal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from connectors.legacy import epoch_date
from connectors.base import serves
from connectors.sql import SqlConnector, by_keys
from core.records.base import Provenance
from core.records.court import (
    DISHONEST_DEBTORS,
    DishonestDebtorRecord,
    PerformanceStatus,
    SubjectKind,
)

metadata = sa.MetaData()

dishonest_debtors = sa.Table(
    "fy_sxbzxr",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ah", sa.String(60), nullable=False),
    sa.Column("bzxrmc", sa.String(200), nullable=False),
    sa.Column("bzxrlx", sa.String(1), nullable=False),
    sa.Column("zjhm", sa.String(18), nullable=False, index=True),
    sa.Column("fddbr", sa.String(50)),
    sa.Column("xb", sa.String(1)),
    sa.Column("nl", sa.Integer),
    sa.Column("zxfy", sa.String(100), nullable=False),
    sa.Column("zxyjwh", sa.String(100), nullable=False),
    sa.Column("zxyjdw", sa.String(100), nullable=False),
    sa.Column("flwsqdyw", sa.Text, nullable=False),
    sa.Column("lxqk", sa.String(1), nullable=False),
    sa.Column("sxxwqx", sa.String(300), nullable=False),
    sa.Column("lasj", sa.BigInteger, nullable=False),
    sa.Column("fbsj", sa.BigInteger, nullable=False),
    sa.Column("jzrq", sa.BigInteger),
    sa.Column("ycrq", sa.BigInteger),
)

SUBJECT_KINDS = {"1": SubjectKind.ORGANIZATION, "2": SubjectKind.PERSON}
SEXES = {"1": "男", "2": "女"}
PERFORMANCE = {
    "1": PerformanceStatus.NOT_PERFORMED,
    "2": PerformanceStatus.PARTIALLY_PERFORMED,
    "3": PerformanceStatus.PERFORMED,
}


# Statements built once; ``fetch`` binds the batch's keys to ``KEYS``.
_DISHONEST_DEBTORS = by_keys(
    dishonest_debtors, dishonest_debtors.c.zjhm, dishonest_debtors.c.fbsj.desc(), dishonest_debtors.c.id.desc()
)


class CourtConnector(SqlConnector):
    """Dishonest judgment debtors, keyed by USCC or resident ID, newest published first."""

    kind = "court"

    @staticmethod
    def _record(row: Any, provenance: Provenance) -> DishonestDebtorRecord:
        return DishonestDebtorRecord(
            case_code=row.ah,
            subject_kind=SUBJECT_KINDS[row.bzxrlx],
            subject_name=row.bzxrmc,
            subject_uscc=row.zjhm if row.bzxrlx == "1" else None,
            subject_id_number=row.zjhm if row.bzxrlx == "2" else None,
            legal_representative=row.fddbr,
            sex=None if row.xb is None else SEXES[row.xb],
            age=row.nl,
            enforcement_court=row.zxfy,
            basis_document=row.zxyjwh,
            basis_issuer=row.zxyjdw,
            duty=row.flwsqdyw,
            performance=PERFORMANCE[row.lxqk],
            behaviour=row.sxxwqx,
            filed_on=epoch_date(row.lasj),
            published_on=epoch_date(row.fbsj),
            expires_on=epoch_date(row.jzrq),
            removed_on=epoch_date(row.ycrq),
            provenance=provenance,
        )

    @serves(DISHONEST_DEBTORS)
    async def load_dishonest_debtors(
        self, codes: Sequence[str]
    ) -> list[list[DishonestDebtorRecord]]:
        rows = await self.fetch(_DISHONEST_DEBTORS, codes)
        provenance = self.provenance()
        return self.grouped(
            codes, rows, lambda row: row.zjhm, lambda row: self._record(row, provenance)
        )
