"""The one error the audit store raises for a trail it cannot use."""

from __future__ import annotations


class AuditUnavailable(Exception):
    """The audit trail could not be written or read.

    The gateway fails closed on it: a response whose release could not be
    recorded must not leave. The message is for the server log (it never
    names hosts or SQL); the driver's exception is chained as ``__cause__``.
    """
