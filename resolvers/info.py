"""The type of ``info`` every resolver receives: strawberry's, with the gateway's context.

The GraphQL layer sits below the application (``gateway`` builds the schema
from it): it names ``gateway.context.RequestContext`` for type checkers only,
and reaches the request's services through ``info.context`` at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import strawberry

if TYPE_CHECKING:
    from gateway.context import RequestContext

    Info = strawberry.Info[RequestContext, None]
else:
    Info = strawberry.Info
