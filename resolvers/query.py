"""The query root."""

from __future__ import annotations

from typing import Optional

import strawberry

from core.codes import InvalidCode, validate_uscc
from core.errors import ForbiddenForPurpose, InvalidInput
from core.text import first_invisible
from resolvers.access import my_access
from resolvers.audit import audit_trail
from resolvers.entity import Entity, Person, prefetch
from resolvers.financing import MAX_PORTFOLIO, FinancingProfile, financing_profiles
from core.scalars import USCC, ResidentId
from resolvers.info import Info
from resolvers.views import my_views

MIN_SEARCH_TEXT = 2


def own_subject_only(info: Info, field: str) -> None:
    """Purposes bound to the caller's own record may not look anyone up."""
    context = info.context
    if context.decision.purpose.own_subject_only:
        raise ForbiddenForPurpose(
            f"{field} is not available for {context.purpose}: ask about your own code only",
            context.purpose,
        )


def subject(info: Info, uscc: str) -> str:
    """Record ``uscc`` as a subject of this request; refuse anyone else's code
    under a purpose bound to the caller's own record."""
    context = info.context
    if context.decision.purpose.own_subject_only and uscc != context.client.organization_code:
        raise ForbiddenForPurpose(
            f"{context.purpose} may only ask about the caller's own code", context.purpose,
        )
    context.subjects.add(uscc)
    return uscc


@strawberry.type(description="One page of a name search.")
class EntitySearchPage:
    entities: list[Entity]
    end_cursor: Optional[str] = strawberry.field(
        description="Pass as `after` to get the next page; null on the last page."
    )
    has_next_page: bool


@strawberry.type
class Query:
    @strawberry.field(description="One organization's credit record.")
    async def entity(self, uscc: USCC, info: Info) -> Entity:
        await prefetch(info, [subject(info, uscc)])
        return Entity(uscc=uscc)

    @strawberry.field(
        description=(
            "Several organizations' credit records, in the order asked. A request asks "
            "about at most `max_subjects_per_request` subjects (default 1000) in all its "
            "fields; more is a TOO_MANY_SUBJECTS error."
        )
    )
    async def entities(self, usccs: list[USCC], info: Info) -> list[Entity]:
        for uscc in usccs:
            subject(info, uscc)
        await prefetch(info, list(dict.fromkeys(usccs)))
        return [Entity(uscc=uscc) for uscc in usccs]

    @strawberry.field(description="Organizations whose registered name contains `name`, by USCC.")
    async def search_entities(
        self,
        info: Info,
        name: str,
        first: int = 20,
        after: Optional[str] = None,
    ) -> EntitySearchPage:
        own_subject_only(info, "searchEntities")
        text = name.strip()
        refused = first_invisible(text)
        if refused is not None:
            raise InvalidInput("name must not contain control or invisible format characters, "
                               f"got U+{ord(refused):04X}")
        if len(text) < MIN_SEARCH_TEXT:
            raise InvalidInput(f"name must have at least {MIN_SEARCH_TEXT} characters")
        limit = info.context.services.settings.max_search_page
        if not 1 <= first <= limit:
            raise InvalidInput(f"first must be between 1 and {limit}, got {first}")
        if after is not None:
            try:
                after = validate_uscc(after)
            except InvalidCode:
                raise InvalidInput("after is not a cursor returned by searchEntities") from None
        found = await info.context.loaders.search_registrations(text, after, first + 1)
        page = found[:first]
        has_next = len(found) > first
        info.context.subjects.update(reg.uscc for reg in page)
        return EntitySearchPage(
            entities=[Entity(uscc=reg.uscc) for reg in page],
            end_cursor=page[-1].uscc if has_next else None,
            has_next_page=has_next,
        )

    @strawberry.field(description="One SME's financing profile (信易贷), for bank portals "
                      "under the FINANCING purpose.")
    async def financing_profile(self, uscc: USCC, info: Info) -> Optional[FinancingProfile]:
        (profile,) = await financing_profiles(info, [subject(info, uscc)])
        return profile

    @strawberry.field(description=f"A portfolio's financing profiles, in the order asked: at "
                      f"most {MAX_PORTFOLIO} enterprises per request.")
    async def financing_profiles(
        self, usccs: list[USCC], info: Info
    ) -> Optional[list[FinancingProfile]]:
        for uscc in usccs:
            subject(info, uscc)
        return await financing_profiles(info, usccs)

    my_access = strawberry.field(
        resolver=my_access,
        description="What the calling client may see under the declared purpose of use.",
    )

    my_views = strawberry.field(
        resolver=my_views,
        description="The saved views (named operations) registered for the calling client, "
        "with whether the declared purpose may run each now.",
    )

    @strawberry.field(description="One natural person's credit record.")
    def person(self, id_number: ResidentId, info: Info) -> Person:
        own_subject_only(info, "person")
        context = info.context
        context.subjects.add(context.services.recorder.person_subject(id_number))
        return Person(id_number=id_number)

    audit_trail = strawberry.field(
        resolver=audit_trail,
        description="The access audit trail, newest first, filtered by client, purpose, "
        "subject (USCC or resident ID) and time window.",
    )
