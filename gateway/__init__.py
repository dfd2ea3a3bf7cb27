"""The credit-information gateway: ASGI app, settings, errors, request context, CLI."""
