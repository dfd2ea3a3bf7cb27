"""Masking of personal identifiers, applied per purpose by the policy."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import get_object_definition


class MaskedIdentifier(FieldExtension):
    """Marks a field holding a resident ID number and applies the purpose's mask.

    Synchronous and only on the few identifier fields: the catalog decides
    per purpose whether the value is masked (``Decision.masks``); a catalog
    mask on a field without this extension is a start-up error.
    """

    def apply(self, field: Any) -> None:
        self.type_name = get_object_definition(field.origin, strict=True).name

    def resolve(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        value = next_(source, info, **kwargs)
        mask = info.context.decision.masks.get(f"{self.type_name}.{info.field_name}")
        return value if mask is None else mask.apply(value)


def masked_identifier(description: str) -> Any:
    return strawberry.field(description=description, extensions=[MaskedIdentifier()])
