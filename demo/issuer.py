"""The demo's token issuer: it stands in for a real authorization server.

``ensure_signing_key`` creates an RSA signing key once, in ``data_dir``:
``signing-key.json`` (the private JWK, mode 0600) and ``jwks.json`` (the
public JWKS: the gateway's ``[auth] jwks_file``). ``issue_token`` mints
RFC 9068 access tokens with it. Unlike the rest of the demo this module
needs joserfc.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

DEMO_ISSUER = "urn:huizhou:credit:demo-issuer"
DEMO_AUDIENCE = "urn:huizhou:credit-gateway"
SIGNING_KEY_FILE = "signing-key.json"
JWKS_FILE = "jwks.json"


def ensure_signing_key(data_dir: Path) -> tuple[RSAKey, Path]:
    """The private signing key and the path of its public JWKS, created on first use."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    key_path, jwks_path = data_dir / SIGNING_KEY_FILE, data_dir / JWKS_FILE
    if not key_path.exists():
        key = RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)
        # O_EXCL: never overwrite a key; 0600: only the owner may read it
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(key.as_dict(private=True), out)
    try:
        key = RSAKey.import_key(json.loads(key_path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, JoseError) as exc:
        raise ValueError(f"{key_path} is not an RSA private JWK ({exc}); delete it to make a new key") from None
    if not key.is_private or not key.kid:
        raise ValueError(f"{key_path} must hold a private RSA JWK with a kid; delete it to make a new key")
    jwks = {"keys": [key.as_dict(private=False)]}
    if not jwks_path.exists() or json.loads(jwks_path.read_text(encoding="utf-8")) != jwks:
        jwks_path.write_text(json.dumps(jwks, indent=2) + "\n", encoding="utf-8")
    return key, jwks_path


def issue_token(
    private_key: RSAKey,
    *,
    client_id: str,
    issuer: str,
    audience: str,
    lifetime_seconds: int = 3600,
    now: int | None = None,
    **claims_overrides: Any,
) -> str:
    """An RFC 9068 access token for ``client_id``, signed RS256 with ``private_key``.

    ``claims_overrides`` replace claims; an override of ``None`` removes the
    claim (tests use this to make invalid tokens).
    """
    issued_at = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(claims_overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    header = {"typ": "at+jwt", "alg": "RS256", "kid": private_key.kid}
    return jwt.encode(header, claims, private_key, algorithms=["RS256"])
