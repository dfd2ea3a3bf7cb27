"""``Query.myAccess``: what the caller may see under the declared purpose."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import strawberry

from resolvers.info import Info


@strawberry.type(description="A purpose of use.")
class PurposeInfo:
    code: str
    name: str


@strawberry.type(description="The calling client, as registered.")
class ClientInfo:
    id: str
    organization: str
    city: str
    kind: str


@strawberry.enum(description="What the declared purpose lets the caller do with a field.")
class FieldAccessKind(Enum):
    ALLOWED = "ALLOWED"
    REQUIRES_AUTHORIZATION = "REQUIRES_AUTHORIZATION"
    DENIED = "DENIED"


@strawberry.type(description="One field of the schema under the declared purpose.")
class FieldAccess:
    field: str = strawberry.field(description="Schema coordinate, `Type.field`.")
    item: str
    item_name: str
    disclosure_class: str
    access: FieldAccessKind
    masked: bool
    authorization_category: Optional[str]


@strawberry.type(description="Row rules that withhold records of a list for this purpose.")
class RowRuleAccess:
    record_type: str
    rules: list[str]


@strawberry.type(description="What the caller may see under the declared purpose.")
class Access:
    client: ClientInfo
    purpose: PurposeInfo
    granted_purposes: list[PurposeInfo]
    fields: list[FieldAccess]
    row_rules: list[RowRuleAccess]


def my_access(info: Info) -> Access:
    context = info.context
    policy = context.services.policy
    decision = context.decision
    client = context.client
    return Access(
        client=ClientInfo(id=client.id, organization=client.organization, city=client.city,
                          kind=client.kind.value),
        purpose=PurposeInfo(code=decision.purpose.code, name=decision.purpose.name),
        granted_purposes=[
            PurposeInfo(code=p.code, name=p.name)
            for code, p in policy.catalog.purposes.items() if code in client.purposes
        ],
        fields=[
            FieldAccess(field=row.coordinate, item=row.item, item_name=row.item_name,
                        disclosure_class=row.disclosure_class,
                        access=FieldAccessKind(row.access), masked=row.masked,
                        authorization_category=row.authorization_category)
            for row in policy.explain(decision)
        ],
        row_rules=[
            RowRuleAccess(record_type=record_type, rules=list(row_filter.rules))
            for record_type, row_filter in sorted(decision.row_filters.items())
        ],
    )
