"""CPU time of bearer-token authentication per request, in process.

``python -m bench.auth_cost [--calls N] [--rounds R]``: ``TokenVerifier.verify``
of one demo token ``N`` times (a client sending the same token with every
request), with the verifier's cache of verified tokens and without it
(``cache_size=0``: every request verifies the signature and claims, as
before the cache), in ``R`` interleaved rounds; prints CPU microseconds per
call (``time.process_time``) per round and their medians. Against a
``gateway`` without the cache (another checkout on ``PYTHONPATH``) it
measures that gateway's verifier only (``uncached``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from pathlib import Path

from demo.issuer import DEMO_AUDIENCE, DEMO_ISSUER, ensure_signing_key, issue_token
from gateway.auth import TokenVerifier
from gateway.settings import AuthSettings


async def cpu_per_call(verifier: TokenVerifier, header: str, calls: int) -> float:
    """CPU microseconds per ``verify(header)``, the first call left out."""
    await verifier.verify(header)
    started = time.process_time()
    for _ in range(calls):
        await verifier.verify(header)
    return (time.process_time() - started) * 1e6 / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    key, jwks = ensure_signing_key(Path(tempfile.mkdtemp()))
    settings = AuthSettings(issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE,
                            clients_file="clients.toml", jwks_file=str(jwks))
    header = "Bearer " + issue_token(key, client_id="hz-market-app", issuer=DEMO_ISSUER,
                                     audience=DEMO_AUDIENCE, lifetime_seconds=3600)
    has_cache = "cache_size" in inspect.signature(TokenVerifier).parameters
    variants = {"uncached": {"cache_size": 0} if has_cache else {}}
    if has_cache:
        variants["cached"] = {}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, options in variants.items():
            verifier = TokenVerifier(settings, **options)
            results[name].append(asyncio.run(cpu_per_call(verifier, header, args.calls)))
    for name, values in results.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name}: {statistics.median(values):.1f} µs CPU per call "
              f"(rounds: {rounds}; {args.calls} calls each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
