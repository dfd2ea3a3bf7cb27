"""``Query.myViews``: the calling client's saved views and whether its purpose may run them."""

from __future__ import annotations

import strawberry

from resolvers.info import Info


@strawberry.type(description="A saved view: a named operation registered for the calling "
                 "client in the persisted-operation store (`credit-gateway views add`), run "
                 "by sending its `documentId` instead of a `query`.")
class SavedView:
    name: str = strawberry.field(description="The operation's name.")
    document_id: str = strawberry.field(
        description="What to send as `documentId`: `sha256:` and the SHA-256 of the document.")
    allowed_for_purpose: bool = strawberry.field(
        description="Whether the declared purpose may use every field the view selects (a "
        "field that needs the subject's authorization counts as allowed) and the view "
        "validates against the schema: run now, nothing of it is denied.")
    denied_fields: list[str] = strawberry.field(
        description="The fields (`Type.field`) of the view the declared purpose may not use: "
        "each answers null with a FORBIDDEN_FOR_PURPOSE error when it runs (or the whole "
        "operation is rejected, for clients registered so).")


def my_views(info: Info) -> list[SavedView]:
    context = info.context
    services = context.services
    if services.operations is None:
        return []
    views = []
    for operation in services.operations.views(context.client.id):
        denied = services.plans.denied_fields(services.schema, operation.document,
                                              context.decision)
        views.append(SavedView(
            name=operation.name, document_id=operation.document_id,
            allowed_for_purpose=denied == (), denied_fields=list(denied or ()),
        ))
    return views
