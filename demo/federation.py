"""The demo's partner cities, served on loopback beside Huizhou.

Shenzhen runs a second instance of this gateway over its own synthetic
departmental data, with an OAuth 2.0 token endpoint for partner gateways;
Dongguan runs the legacy REST simulator of ``demo.dongguan``. Both hold
records about some of the Huizhou firms served, which Huizhou's gateway merges
into their lists. The Huizhou configuration written here adds both as partner
sources.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from demo.dongguan import create_dongguan_app
from demo.generate import create_demo_data, ensure_log_key
from demo.issuer import ensure_signing_key
from demo.population import build_population
from demo.token_endpoint import token_route
from gateway.app import create_app
from gateway.audit.checkpoint import Signer
from gateway.audit.witness import Witness
from gateway.settings import Settings, load_settings
from gateway.transparency import WitnessSettings

PARTNER_CLIENT_ID = "huizhou-gateway"  # how Huizhou's gateway is known to its partners
SHENZHEN_SIZE = 500
DONGGUAN_SIZE = 300


def gateway_with_token_endpoint(settings: Settings, clients: Mapping[str, str]) -> Starlette:
    """A gateway that also issues client-credentials tokens to ``clients``
    (client id -> secret), signed with its demo key."""
    gateway = create_app(settings)
    key, _ = ensure_signing_key(Path(settings.auth.jwks_file).parent)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):
            yield

    return Starlette(
        routes=[
            token_route(key, issuer=settings.auth.issuer, audience=settings.auth.audience,
                        clients=clients),
            Mount("/", gateway),
        ],
        lifespan=lifespan,
    )


def partner_sources_text(shenzhen_url: str, dongguan_url: str, secret: str,
                         timeout_seconds: float = 2.0) -> str:
    """The ``[sources.*]`` tables of the two partner cities."""
    common = [
        f'client_id = "{PARTNER_CLIENT_ID}"',
        f'client_secret = "{secret}"',
        f"timeout_seconds = {timeout_seconds}",
        "",
    ]
    return "\n".join([
        "[sources.sz-gateway]",
        'connector = "shenzhen"',
        f'url = "{shenzhen_url}/graphql"',
        f'token_url = "{shenzhen_url}/oauth/token"',
        'divisions = ["4403"]',
        'department = "深圳市公共信用中心"',
        'city = "深圳"',
        *common,
        "[sources.dg-gateway]",
        'connector = "dongguan"',
        f'url = "{dongguan_url}"',
        f'token_url = "{dongguan_url}/oauth/token"',
        'divisions = ["441900"]',
        'department = "东莞市公共信用信息中心"',
        'city = "东莞"',
        *common,
    ])


def _witness_signer(data_dir: Path, city: str) -> Signer:
    name = ensure_log_key(data_dir, city, f"{city}-witness.key", f"{city}.credit.demo/witness")
    return Signer.parse((data_dir / name).read_text(encoding="utf-8").strip())


def witnesses_text(urls: Mapping[str, str], signers: Mapping[str, Signer]) -> str:
    """``[[transparency.witnesses]]`` tables: the partners cosign Huizhou's checkpoints."""
    lines = []
    for city, url in urls.items():
        lines += ["[[transparency.witnesses]]", f'name = "{city}"',
                  f'key = "{signers[city].verifier}"', f'url = "{url}/witness/add-checkpoint"', ""]
    return "\n".join(lines)


@dataclass
class Federation:
    """Huizhou's federated configuration and the partner apps to serve."""

    config: Path
    partners: list[tuple[str, Any, int]]  # (name, ASGI app, port)


def prepare_federation(data_dir: Path, huizhou_config: Path, host: str, port: int,
                       size: int, persons: int) -> Federation:
    """Create the partners' demo data if absent and write ``federated.toml``:
    Huizhou's configuration plus Shenzhen on ``port + 1`` and Dongguan on
    ``port + 2``."""
    secret_file = data_dir / "partner-secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(32))
        secret_file.chmod(0o600)
    secret = secret_file.read_text()
    clients = {PARTNER_CLIENT_ID: secret}

    huizhou = build_population(size, persons)
    huizhou_settings = load_settings(huizhou_config)
    log_keys = [huizhou_settings.transparency.signer.verifier] \
        if huizhou_settings.transparency is not None else []
    witnesses = {city: _witness_signer(data_dir, city) for city in ("shenzhen", "dongguan")}
    shenzhen_config = create_demo_data(data_dir / "shenzhen", size=SHENZHEN_SIZE,
                                       persons=100, city="shenzhen", neighbour=huizhou)
    shenzhen_settings = load_settings(shenzhen_config)
    if log_keys:  # Shenzhen's gateway witnesses Huizhou's audit log
        shenzhen_settings = dataclasses.replace(shenzhen_settings, witness=WitnessSettings(
            witnesses["shenzhen"], tuple(log_keys), str(data_dir / "shenzhen-witness.json")))
    shenzhen = gateway_with_token_endpoint(shenzhen_settings, clients)
    dongguan = create_dongguan_app(
        clients=clients, huizhou_usccs={e.uscc: e.name for e in huizhou.enterprises},
        size=DONGGUAN_SIZE,
    )
    if log_keys:  # and so does Dongguan's simulator
        dongguan.router.routes.append(Witness(witnesses["dongguan"], log_keys,
                                              data_dir / "dongguan-witness.json").route())
    federated = data_dir / "federated.toml"
    federated.write_text(
        huizhou_config.read_text(encoding="utf-8") + "\n"
        + partner_sources_text(f"http://{host}:{port + 1}", f"http://{host}:{port + 2}", secret)
        + ("\n" + witnesses_text({"shenzhen": f"http://{host}:{port + 1}",
                                   "dongguan": f"http://{host}:{port + 2}"}, witnesses)
           if log_keys else ""),
        encoding="utf-8",
    )
    return Federation(federated, [("Shenzhen", shenzhen, port + 1),
                                  ("Dongguan", dongguan, port + 2)])
