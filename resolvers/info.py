"""The type of ``info`` every resolver receives: strawberry's, with the gateway's context."""

from __future__ import annotations

import strawberry

from gateway.context import RequestContext

Info = strawberry.Info[RequestContext, None]
