"""What a connector is built from: one ``[sources.<id>]`` table of the
configuration file (parsed and documented by ``gateway.settings``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceSettings:
    id: str
    connector: str
    url: str
    department: str
    city: str
    timeout_seconds: float = 5.0
    simulated_latency_ms: float = 0.0
    pool_size: int = 16  # SQL sources: connections kept open (no throwaway overflow connections)
    # Partner endpoints (HTTP connectors) only:
    divisions: tuple[str, ...] = ()  # division-code prefixes whose registrations this source holds
    token_url: str = ""  # OAuth 2.0 client-credentials token endpoint
    client_id: str = ""
    client_secret: str = ""
    retries: int = 2  # extra attempts for a failed read, with exponential backoff and jitter
    backoff_seconds: float = 0.05
    breaker_failures: int = 5  # consecutive failures that open the circuit ...
    breaker_reset_seconds: float = 30.0  # ... for this long
    max_concurrency: int = 8  # requests in flight to the partner at once
    max_response_bytes: int = 5_000_000
