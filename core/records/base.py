"""What every record type shares: where a record comes from, and the
declaration of a record type (``RecordType``).

Record classes are plain strawberry types (dataclasses, no resolvers): every
field is a synchronous attribute, so resolving them costs no more than a
``getattr``. Amounts carry their unit in the description; dates are
calendar dates.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from datetime import datetime
from enum import Enum

import strawberry


class Key(Enum):
    """What a record type is keyed by: the subject it describes."""

    USCC = "Entity"  # an organization, by unified social credit code
    RESIDENT_ID = "Person"  # a natural person, by resident identity number

    @property
    def owner(self) -> str:
        """The GraphQL type of the subject (``Entity`` or ``Person``)."""
        return self.value


@dataclasses.dataclass(frozen=True, eq=False)
class RecordType:
    """One kind of record a source serves, declared once beside its class.

    ``name`` identifies it in the gateway (loaders, policy, configuration);
    ``record`` is the record class; ``many`` says whether a key has a list
    of records (merged from every source serving it) or at most one (read
    from the subject's home source, chosen by division code). ``fields``
    maps each kind of key to the description of the GraphQL field that
    serves it on that subject: ``{Key.USCC: "..."}`` adds the field ``field``
    to ``Entity``, ``Key.RESIDENT_ID`` to ``Person``. A record type without
    ``fields`` is internal (read by the gateway, not a schema field), keyed
    by ``keys``.
    """

    name: str
    record: type
    many: bool = True
    field: str | None = None
    fields: Mapping[Key, str] = dataclasses.field(default_factory=dict)
    keys: tuple[Key, ...] = ()

    def __post_init__(self) -> None:
        if self.fields and not self.field:
            raise ValueError(f"record type {self.name!r} has field descriptions but no field name")
        if not self.keys:
            object.__setattr__(self, "keys", tuple(self.fields) or (Key.USCC,))

    def __repr__(self) -> str:
        return f"RecordType({self.name!r})"


PUBLICITY_ENDS = (
    "Last day of the record's publicity window (公示截止期), included: its maximum window in "
    "calendar months from the decision date, or the department's earlier end date."
)
REPAIRED_ON = (
    "Date of the approved credit repair of this record, if any; the repair takes effect no "
    "earlier than the end of the minimum publicity window."
)


@strawberry.type(description="Where a record comes from and when it was read.")
class Provenance:
    source: str = strawberry.field(description="Gateway id of the source, e.g. `hz-market`.")
    department: str = strawberry.field(description="The department that keeps the record.")
    city: str = strawberry.field(description="The city whose department keeps the record.")
    as_of: datetime = strawberry.field(description="When the gateway read the record (UTC).")


@strawberry.interface(description="Any credit record: every record says where it comes from.")
class CreditRecord:
    provenance: Provenance

