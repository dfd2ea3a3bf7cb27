"""The partner-city connector: what the Shenzhen and Dongguan connectors share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from connectors.base import HOP_HEADER, ON_BEHALF_OF_HEADER, Connector, SourceCall
from connectors.partner_http import PartnerClient
from core.codes import InvalidCode, validate_resident_id, validate_uscc
from core.config import SourceSettings

PURPOSE_HEADER = "X-Purpose-Of-Use"
REQUEST_ID_HEADER = "X-Request-Id"
HOP_VALUE = "huizhou"  # the value of ``HOP_HEADER``: who sends the request


def is_uscc(key: Any) -> bool:
    """Whether ``key`` is a USCC that is not also a resident ID number (an ID
    number is personal data: when in doubt, it is never sent to a partner)."""
    for validate, wanted in ((validate_uscc, True), (validate_resident_id, False)):
        try:
            validate(key)
        except InvalidCode:
            return not wanted
    return False


class PartnerConnector(Connector):
    """What every partner city's connector shares: a ``PartnerClient`` (its
    breaker is its readiness), batch methods that take the request's
    ``SourceCall`` (``call=``: who asks, why, what they selected), and the headers every call carries: purpose,
    request id, the asking organization and the hop marker."""

    is_partner: ClassVar[bool] = True

    def __init__(self, settings: SourceSettings, *, transport: Any = None) -> None:
        """``transport``: for tests only."""
        super().__init__(settings)
        self.client = PartnerClient(settings, transport)

    async def load(self, record_type: str, keys: Sequence[Any], call: SourceCall) -> list[Any]:
        return await getattr(self, self._batch_methods[record_type])(keys, call=call)

    def is_home(self, key: Any) -> bool:
        """Whether the partner holds ``key``'s registration (its divisions)."""
        return is_uscc(key) and key[2:8].startswith(tuple(self.divisions))

    @staticmethod
    def headers(call: SourceCall) -> dict[str, str]:
        return {
            PURPOSE_HEADER: call.purpose,
            REQUEST_ID_HEADER: call.request_id,
            ON_BEHALF_OF_HEADER: quote(call.organization, safe=""),
            HOP_HEADER: HOP_VALUE,
        }

    async def check(self) -> None:
        self.client.check()

    async def aclose(self) -> None:
        await self.client.aclose()
