"""Dongguan (东莞, 441900): the city's legacy REST/JSON credit API (see
``demo.dongguan`` for a simulator), read through ``PartnerClient``.

- Registrations: ``GET api/v1/qyxx?tyshxydm=C1,...,C20``; only codes of the
  source's ``divisions`` are asked for (others get ``None`` without a call),
  in calls of at most 20 codes, run concurrently.
- Penalties: ``GET api/v1/xzcf/{tyshxydm}``, one call per USCC (the API has
  no batch form), run concurrently; keys that are not USCCs (resident IDs)
  get ``[]`` without a call. Dongguan holds penalties it imposed on firms of
  other cities too, so every USCC is asked for.

Answers are envelopes ``{"code": 0, "message": "ok", "data": ...}``: a
non-zero ``code``, ``data`` of the wrong shape or a record that cannot be
mapped is ``BadSourceData``. A 403 (Dongguan's own policy does not share for
the purpose) is ``core.errors.PartnerRefused``. The client's concurrency
limit bounds the requests in flight.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Iterable, Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from connectors.partner import PartnerConnector, is_uscc
from connectors.base import SourceCall, serves
from connectors.legacy import iso_date
from core.errors import SourceError
from core.records.base import Provenance
from core.records.credit_office import PENALTIES, Penalty, PenaltyType, Severity
from core.records.market import REGISTRATION, EntityStatus, Registration

T = TypeVar("T")

MAX_CODES_PER_CALL = 20
PENALTY_TYPES = {t.value: t for t in PenaltyType} | {
    "没收违法所得": PenaltyType.CONFISCATION,
    "没收非法财物": PenaltyType.CONFISCATION,
    "暂扣许可证": PenaltyType.LICENCE_SUSPENSION,
    "吊销许可证": PenaltyType.LICENCE_REVOCATION,
    "责令停产停业": PenaltyType.BUSINESS_SUSPENSION,
}
SEVERITIES = {s.value: s for s in Severity}
STATUSES = {s.value: s for s in EntityStatus}
_LIST_SEPARATORS = re.compile(r"[,，;；]")


class DongguanConnector(PartnerConnector):
    """Dongguan's registrations and administrative penalties."""

    kind = "dongguan"

    # -- registrations --------------------------------------------------------

    @serves(REGISTRATION)
    async def load_registrations(
        self, usccs: Sequence[str], *, call: SourceCall,
    ) -> list[Registration | None]:
        home = [key for key in dict.fromkeys(usccs) if self.is_home(key)]
        chunks = [home[i:i + MAX_CODES_PER_CALL] for i in range(0, len(home), MAX_CODES_PER_CALL)]
        answers = await _all(
            self._get("api/v1/qyxx", call, params={"tyshxydm": ",".join(chunk)}) for chunk in chunks
        )
        provenance = self.provenance()
        rows = [row for answer in answers for row in self._records(answer)]
        return self.single(
            usccs, rows, lambda row: row["tyshxydm"],
            lambda row: _registration(row, provenance),
        )

    # -- penalties --------------------------------------------------------------

    @serves(PENALTIES)
    async def load_penalties(
        self, keys: Sequence[str], *, call: SourceCall,
    ) -> list[list[Penalty]]:
        asked = [key for key in dict.fromkeys(keys) if is_uscc(key)]
        answers = await _all(self._get(f"api/v1/xzcf/{key}", call) for key in asked)
        provenance = self.provenance()
        found = {
            key: self.mapped(self._records(answer), lambda row: _penalty(row, provenance))
            for key, answer in zip(asked, answers)
        }
        return [found.get(key, []) for key in keys]

    # -- one call ---------------------------------------------------------------

    async def _get(self, path: str, call: SourceCall, *, params: dict | None = None) -> Any:
        """The ``data`` of the envelope answering ``GET path``."""
        envelope = await self.client.get_json(path, params=params, headers=self.headers(call))
        if not isinstance(envelope, dict) or "code" not in envelope:
            raise self.client.bad_data(f"source {self.id} answered without its envelope")
        if envelope["code"] != 0:
            raise self.client.bad_data(
                f"source {self.id} answered with error code {envelope['code']!r}"
            )
        return envelope.get("data")

    def _records(self, data: Any) -> list[dict[str, Any]]:
        """``data`` as a list of records, or ``BadSourceData``."""
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise self.client.bad_data(
                f"source {self.id} answered with data the gateway cannot interpret"
            )
        return data




async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await ``calls`` concurrently, results in order; on a failure cancel the
    rest and raise the first ``SourceError`` (else the first exception)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in calls]
    except ExceptionGroup as failed:
        errors = failed.exceptions
        raise next((e for e in errors if isinstance(e, SourceError)), errors[0]) from None
    return [task.result() for task in tasks]


# -- mapping Dongguan's fields ----------------------------------------------------


def _text(row: dict[str, Any], key: str) -> str | None:
    """An optional text field: absent, null or blank -> ``None``."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key} is not text")
    return value


def _required_text(row: dict[str, Any], key: str) -> str:
    value = _text(row, key)
    if value is None:
        raise KeyError(key)
    return value


def _amount(row: dict[str, Any], key: str) -> Decimal | None:
    """An optional amount in 万元, sent as a string (numbers accepted)."""
    value = row.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"{key} is not an amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{key} is not an amount") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{key} is not an amount")
    return amount


def _date(row: dict[str, Any], key: str) -> date | None:
    return iso_date(_text(row, key))


def _required_date(row: dict[str, Any], key: str) -> date:
    return iso_date(_required_text(row, key))  # type: ignore[return-value]


def _registration(row: dict[str, Any], provenance: Provenance) -> Registration:
    return Registration(
        uscc=_required_text(row, "tyshxydm"),
        name=_required_text(row, "qymc"),
        legal_representative=_text(row, "fddbr"),
        legal_representative_id_number=None,  # Dongguan does not share it
        entity_type=_required_text(row, "qylx"),
        established_on=_date(row, "clrq"),
        registered_capital=_amount(row, "zczb"),
        status=STATUSES[_required_text(row, "djzt")],
        address=_text(row, "zs"),
        business_scope=_text(row, "jyfw"),
        registration_authority=_text(row, "djjg"),
        provenance=provenance,
    )


def _penalty_types(words: str) -> list[PenaltyType]:
    types = [PENALTY_TYPES[w.strip()] for w in _LIST_SEPARATORS.split(words) if w.strip()]
    if not types:
        raise ValueError("no penalty type")
    return list(dict.fromkeys(types))


def _penalty(row: dict[str, Any], provenance: Provenance) -> Penalty:
    organ = _required_text(row, "cfjg")
    return Penalty(
        decision_number=_required_text(row, "cfjdsh"),
        subject_name=_required_text(row, "dsrmc"),
        violation_type=_required_text(row, "wfxw"),
        facts=_required_text(row, "wfss"),
        legal_basis=_required_text(row, "cfyj"),
        penalty_types=_penalty_types(_required_text(row, "cflb")),
        fine=_amount(row, "fkje"),
        confiscated=_amount(row, "msje"),
        decided_on=_required_date(row, "cfrq"),
        publicity_ends_on=_date(row, "gsjzq"),
        severity=SEVERITIES[_required_text(row, "yzcd")],
        issuing_organ=organ,
        issuing_organ_code=_text(row, "cfjgdm"),
        reporting_department=organ,  # Dongguan's API names no separate reporting department
        repaired_on=None,  # Dongguan never shares repaired penalties
        provenance=provenance,
    )
