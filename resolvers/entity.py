"""``Entity`` (an organization, keyed by USCC) and ``Person`` (a natural
person, keyed by resident ID): each source-backed field is one DataLoader
call, so N subjects cost one statement per (source, record type).

``prefetch`` loads what a selection of entities needs before their fields
are resolved: the fields then complete synchronously, without one awaited
completion each (about 15 µs per field and object in graphql-core)."""

from __future__ import annotations

from typing import Any, Optional

import strawberry

from connectors import RECORD_TYPES
from core.errors import ForbiddenForPurpose
from core.masking import masked_identifier
from core.records.base import Key, RecordType
from core.records.credit_office import AUTHORIZATIONS
from core.records.market import LEGAL_REPRESENTATIVE_OF, REGISTRATION
from core.scalars import USCC, ResidentId
from resolvers.audit import AccessHistoryPage, access_history
from resolvers.info import Info


RECORD_TYPE = "record_type"  # metadata key of source-backed fields
#: Metadata key of the fields ``from_source`` makes: (owner type, record
#: type, key attribute). Compiled execution (``gateway.compiled``) completes
#: such a field from ``Loaders.settled`` when its answer is in and needs no
#: authorization, exactly as ``resolve`` below would return it.
FROM_SOURCE = "from_source"


def from_source(owner: str, declared: RecordType, key: str) -> Any:
    """The field of type ``owner`` (``Entity``, ``Person``) serving the
    record type ``declared``, resolved by its loader with the subject's
    ``key`` attribute.

    The resolver is synchronous: it returns the value when it was prefetched,
    else the loader's future, which graphql-core awaits, so siblings backed by
    different sources run concurrently and no coroutine is created per field.
    Only where the purpose needs the subject's authorization for this field
    does it await the authorization first.
    """
    record_type = declared.name
    gate = (owner, record_type)
    returns = list[declared.record] if declared.many else declared.record
    description = declared.fields[Key.USCC if owner == "Entity" else Key.RESIDENT_ID]

    def resolve(root: Any, info: Info) -> Any:
        context = info.context
        category = context.decision.authorization_by_field.get(gate)
        if category is None:
            return context.loaders.value(record_type, getattr(root, key), info.path)
        return load_if_authorized(
            context, record_type, getattr(root, key), category, f"{owner}.{info.field_name}",
            info.path,
        )

    resolve.__annotations__ = {"root": Any, "info": Info, "return": Optional[returns]}
    return strawberry.field(resolver=resolve, name=declared.field, description=description,
                            metadata={RECORD_TYPE: record_type,
                                      FROM_SOURCE: (owner, record_type, key)})


async def load_if_authorized(
    context: Any, record_type: str, uscc: str, category: str, coordinate: str, path: Any
) -> Any:
    """Load ``record_type`` only when the subject has authorized the caller's
    organization to see ``category`` for the declared purpose, today; else
    the field ``coordinate`` is denied."""
    grantee = context.client.organization_code
    decision = context.decision
    purpose_codes = decision.purpose.authorization_codes
    category_codes = decision.authorization_codes[category]
    authorizations = await context.loaders.load(AUTHORIZATIONS.name, uscc)
    for authorization in authorizations:
        if grantee and authorization.covers(grantee, purpose_codes, category_codes, context.today):
            context.authorizations_used.add(authorization.number)
            return await context.loaders.load(record_type, uscc, path)
    context.denied_fields.append(coordinate)
    subject = "the enterprise's" if coordinate.startswith("Entity.") else "the data subject's"
    raise ForbiddenForPurpose(
        f"{context.purpose} needs {subject} valid authorization of "
        f"{context.client.organization} to see {category} data",
        context.purpose,
        reason="NO_SUBJECT_AUTHORIZATION",
        field=coordinate,
    )


async def prefetch(info: Info, usccs: list[str]) -> None:
    """Load every record type the selection of ``info``'s field (entities)
    reads, for ``usccs``, before the entities are resolved; not the record
    types gated by the subject's authorization, read only once it is checked.
    What the selection reads comes from the enforcement plan (one walk of the
    operation, fragments and ``@skip``/``@include`` applied)."""
    context = info.context
    names = context.plan.children.get((info.path.key,), ()) if context.plan else ()
    gated = context.decision.authorization_by_field
    record_types = [record_type for name, record_type in _ENTITY_RECORD_TYPES.items()
                    if name in names and ("Entity", record_type) not in gated]
    await context.loaders.prefetch(record_types, usccs)


def _subject_type(name: str, key: Key, key_attribute: str, key_field: Any,
                  description: str, namespace: dict[str, Any]) -> type:
    """The strawberry type of a subject: its key, a field for each record type
    declared on that kind of key (``RecordType.fields``, in the order of
    ``connectors.RECORD_TYPES``), then the hand-written fields of ``namespace``."""
    fields: dict[str, Any] = {"__module__": __name__, "__annotations__": {key_attribute: key_field}}
    if key is Key.RESIDENT_ID:
        fields[key_attribute] = masked_identifier("Resident identity number.")
    for record_type in RECORD_TYPES.values():
        if key in record_type.fields:
            fields[record_type.name] = from_source(name, record_type, key_attribute)
    fields.update(namespace)
    return strawberry.type(type(name, (), fields), description=description)


class _EntityFields:
    @strawberry.field(description="Who read this organization's credit data: organization, "
                      "time, purpose and categories of data, newest first.")
    async def access_history(
        self, info: Info, first: int = 20, after: Optional[str] = None
    ) -> Optional[AccessHistoryPage]:
        return await access_history(self.uscc, info, first, after)


Entity = _subject_type(
    "Entity", Key.USCC, "uscc", USCC,
    "An organization's credit record across all sources, keyed by its USCC.",
    {"access_history": _EntityFields.access_history},
)


#: GraphQL field name -> record type, for the source-backed fields of ``Entity``.
_ENTITY_RECORD_TYPES = {declared.field: declared.name for declared in RECORD_TYPES.values()
                        if Key.USCC in declared.fields}


class _PersonFields:
    @strawberry.field(
        description="Organizations whose registered legal representative this person is.",
        metadata={RECORD_TYPE: LEGAL_REPRESENTATIVE_OF.name},
    )
    async def legal_representative_of(self, info: Info) -> Optional[list[Entity]]:
        loaders = info.context.loaders
        registrations = await loaders.load(LEGAL_REPRESENTATIVE_OF.name, self.id_number)
        for registration in registrations:
            loaders.prime_local(REGISTRATION.name, registration.uscc, registration)
        info.context.subjects.update(registration.uscc for registration in registrations)
        return [Entity(uscc=registration.uscc) for registration in registrations]


Person = _subject_type(
    "Person", Key.RESIDENT_ID, "id_number", ResidentId,
    "A natural person's credit record, keyed by resident identity number.",
    {"legal_representative_of": _PersonFields.legal_representative_of},
)
