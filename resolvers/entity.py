"""``Entity`` (an organization, keyed by USCC) and ``Person`` (a natural
person, keyed by resident ID): each source-backed field is one DataLoader
call, so N subjects cost one statement per (source, record type).

``prefetch`` loads what a selection of entities needs before their fields
are resolved: the fields then complete synchronously, without one awaited
completion each (about 15 µs per field and object in graphql-core)."""

from __future__ import annotations

from typing import Any, Optional

import strawberry
from strawberry.types import get_object_definition

from connectors import record_types as rt
from gateway.errors import ForbiddenForPurpose
from resolvers import records as r
from resolvers.audit import AccessHistoryPage, access_history
from resolvers.masking import masked_identifier
from resolvers.scalars import USCC, ResidentId
from resolvers.info import Info


RECORD_TYPE = "record_type"  # metadata key of source-backed fields


def from_source(owner: str, record_type: str, returns: Any, key: str, description: str) -> Any:
    """A field of type ``owner`` resolved by the DataLoader of ``record_type``
    with the subject's ``key``.

    The resolver is synchronous: it returns the value when it was prefetched,
    else the loader's future, which graphql-core awaits, so siblings backed by
    different sources run concurrently and no coroutine is created per field.
    Only where the purpose needs the subject's authorization for this field
    does it await the authorization first.
    """
    gate = (owner, record_type)

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
    return strawberry.field(
        resolver=resolve, description=description, metadata={RECORD_TYPE: record_type}
    )


async def load_if_authorized(
    context: Any, record_type: str, uscc: str, category: str, coordinate: str, path: Any
) -> Any:
    """Load ``record_type`` only when the subject has authorized the caller's
    organization to see ``category`` for the declared purpose, today; else
    the field ``coordinate`` is denied."""
    grantee = context.client.organization_code
    authorizations = await context.loaders.load(rt.AUTHORIZATIONS, uscc)
    for authorization in authorizations:
        if grantee and authorization.covers(grantee, context.purpose, category, context.today):
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


def _entity_field(record_type: str, returns: Any, description: str) -> Any:
    return from_source("Entity", record_type, returns, "uscc", description)


def _person_field(record_type: str, returns: Any, description: str) -> Any:
    return from_source("Person", record_type, returns, "id_number", description)


@strawberry.type(description="An organization's credit record across all sources, keyed by its USCC.")
class Entity:
    uscc: USCC

    registration = _entity_field(
        rt.REGISTRATION, r.Registration, "Registration (market regulation); null if none is on record."
    )
    abnormal_operations = _entity_field(
        rt.ABNORMAL_OPERATIONS, list[r.AbnormalOperationListing], "Abnormal operations list entries."
    )
    serious_violations = _entity_field(
        rt.SERIOUS_VIOLATIONS, list[r.SeriousViolationListing], "Serious violation list entries."
    )
    licences = _entity_field(
        rt.LICENCES, list[r.Licence], "Administrative licences (double publicity)."
    )
    penalties = _entity_field(
        rt.PENALTIES, list[r.Penalty], "Administrative penalties (double publicity), newest first."
    )
    tax_ratings = _entity_field(
        rt.TAX_RATINGS, list[r.TaxRating], "Tax credit ratings, newest year first."
    )
    tax_arrears = _entity_field(
        rt.TAX_ARREARS, list[r.TaxArrear], "Announced tax arrears."
    )
    dishonest_debtor_records = _entity_field(
        rt.DISHONEST_DEBTORS, list[r.DishonestDebtorRecord], "Dishonest judgment debtor records."
    )
    social_insurance = _entity_field(
        rt.SOCIAL_INSURANCE, list[r.SocialInsuranceMonth], "Monthly social-insurance contributions, newest first."
    )
    environmental_ratings = _entity_field(
        rt.ENVIRONMENTAL_RATINGS, list[r.EnvironmentalRating], "Environmental credit ratings, newest first."
    )
    environmental_penalties = _entity_field(
        rt.ENVIRONMENTAL_PENALTIES, list[r.EnvironmentalPenalty], "Environmental penalties, newest first."
    )
    credit_lists = _entity_field(
        rt.CREDIT_LISTS, list[r.CreditListEntry], "Red and black list entries."
    )
    commitments = _entity_field(
        rt.COMMITMENTS, list[r.CreditCommitment], "Credit commitments."
    )
    repairs = _entity_field(
        rt.REPAIRS, list[r.CreditRepair], "Credit repairs."
    )

    @strawberry.field(description="Who read this organization's credit data: organization, "
                      "time, purpose and categories of data, newest first.")
    async def access_history(
        self, info: Info, first: int = 20, after: Optional[str] = None
    ) -> Optional[AccessHistoryPage]:
        return await access_history(self.uscc, info, first, after)


def _graphql_record_types(cls: type) -> dict[str, str]:
    """GraphQL field name -> record type, for the source-backed fields of ``cls``."""
    return {
        field.graphql_name or _camel(field.python_name): field.metadata[RECORD_TYPE]
        for field in get_object_definition(cls, strict=True).fields
        if RECORD_TYPE in (field.metadata or {})
    }


def _camel(name: str) -> str:
    """``tax_ratings`` -> ``taxRatings``, as the schema names fields."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_ENTITY_RECORD_TYPES = _graphql_record_types(Entity)


@strawberry.type(description="A natural person's credit record, keyed by resident identity number.")
class Person:
    id_number: ResidentId = masked_identifier("Resident identity number.")

    dishonest_debtor_records = _person_field(
        rt.DISHONEST_DEBTORS, list[r.DishonestDebtorRecord], "Dishonest judgment debtor records."
    )
    penalties = _person_field(
        rt.PENALTIES, list[r.Penalty], "Administrative penalties against the person, newest first."
    )

    @strawberry.field(
        description="Organizations whose registered legal representative this person is.",
        metadata={RECORD_TYPE: rt.LEGAL_REPRESENTATIVE_OF},
    )
    async def legal_representative_of(self, info: Info) -> Optional[list[Entity]]:
        registrations = await info.context.loaders.load(rt.LEGAL_REPRESENTATIVE_OF, self.id_number)
        for registration in registrations:
            info.context.loaders.prime_local(rt.REGISTRATION, registration.uscc, registration)
        info.context.subjects.update(registration.uscc for registration in registrations)
        return [Entity(uscc=registration.uscc) for registration in registrations]
