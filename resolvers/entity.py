"""``Entity`` (an organization, keyed by USCC) and ``Person`` (a natural
person, keyed by resident ID): each source-backed field is one DataLoader
call, so N subjects cost one statement per (source, record type)."""

from __future__ import annotations

from typing import Any, Optional

import strawberry

from connectors import record_types as rt
from gateway.errors import ForbiddenForPurpose
from resolvers import records as r
from resolvers.audit import AccessHistoryPage, access_history
from resolvers.masking import masked_identifier
from resolvers.scalars import USCC, ResidentId


RECORD_TYPE = "record_type"  # metadata key of source-backed fields


def from_source(record_type: str, returns: Any, key: str, description: str) -> Any:
    """A field resolved by the DataLoader of ``record_type`` with the subject's ``key``.

    The resolver is synchronous and returns the loader's future: graphql-core
    awaits it, so siblings backed by different sources run concurrently and no
    coroutine is created per field. Only where the purpose needs the subject's
    authorization for the record type does it await the authorization first.
    """

    def resolve(root: Any, info: strawberry.Info) -> Any:
        context = info.context
        category = context.decision.authorization_by_record_type.get(record_type)
        if category is None:
            return context.loaders.load(record_type, getattr(root, key), info.path)
        return load_if_authorized(
            context, record_type, getattr(root, key), category, f"Entity.{info.field_name}",
            info.path,
        )

    resolve.__annotations__ = {"root": Any, "info": strawberry.Info, "return": Optional[returns]}
    return strawberry.field(
        resolver=resolve, description=description, metadata={RECORD_TYPE: record_type}
    )


async def load_if_authorized(
    context: Any, record_type: str, uscc: str, category: str, coordinate: str, path: Any
) -> Any:
    """Load ``record_type`` only when the subject has authorized the caller's
    organization to see ``category`` for the declared purpose, today."""
    grantee = context.client.organization_code
    authorizations = await context.loaders.load(rt.AUTHORIZATIONS, uscc)
    for authorization in authorizations:
        if grantee and authorization.covers(grantee, context.purpose, category, context.today):
            context.authorizations_used.add(authorization.number)
            return await context.loaders.load(record_type, uscc, path)
    context.denied_fields.append(coordinate)
    raise ForbiddenForPurpose(
        f"{context.purpose} needs the enterprise's valid authorization of "
        f"{context.client.organization} to see {category} data",
        context.purpose,
        reason="NO_SUBJECT_AUTHORIZATION",
    )


def _entity_field(record_type: str, returns: Any, description: str) -> Any:
    return from_source(record_type, returns, "uscc", description)


def _person_field(record_type: str, returns: Any, description: str) -> Any:
    return from_source(record_type, returns, "id_number", description)


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
        self, info: strawberry.Info, first: int = 20, after: Optional[str] = None
    ) -> Optional[AccessHistoryPage]:
        return await access_history(self.uscc, info, first, after)


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
    async def legal_representative_of(self, info: strawberry.Info) -> Optional[list[Entity]]:
        registrations = await info.context.loaders.load(rt.LEGAL_REPRESENTATIVE_OF, self.id_number)
        for registration in registrations:
            info.context.loaders.prime_local(rt.REGISTRATION, registration.uscc, registration)
        info.context.subjects.update(registration.uscc for registration in registrations)
        return [Entity(uscc=registration.uscc) for registration in registrations]
