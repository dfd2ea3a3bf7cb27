"""Configuration: TOML file plus environment overrides, strictly validated."""

from pathlib import Path

import pytest

from core.errors import ConfigurationError
from gateway.settings import load_settings

VALID = """
[gateway]
max_batch_keys = 200
graphiql = true

[auth]
issuer = "urn:test:issuer"
audience = "urn:test:gateway"
jwks_file = "keys/jwks.json"
clients_file = "clients.toml"

[audit]
url = "sqlite+aiosqlite:///audit.db"
subject_key = "0123456789abcdef0123456789abcdef"

[sources.hz-market]
connector = "market"
url = "sqlite+aiosqlite:///market.db"
department = "惠州市市场监督管理局"
city = "惠州"
timeout_seconds = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_is_read_with_defaults(tmp_path):
    settings = load_settings(write(tmp_path, VALID), env={})
    assert settings.max_batch_keys == 200
    assert settings.max_subjects_per_request == 1000
    assert settings.graphiql is True
    (source,) = settings.sources
    assert (source.id, source.connector, source.city) == ("hz-market", "market", "惠州")
    assert source.timeout_seconds == 2.0 and source.simulated_latency_ms == 0.0
    assert settings.auth.issuer == "urn:test:issuer"
    assert settings.auth.jwks_file == str(tmp_path.resolve() / "keys" / "jwks.json")
    assert settings.auth.clients_file == str(tmp_path.resolve() / "clients.toml")
    assert settings.auth.algorithms == ("RS256", "PS256", "ES256", "Ed25519")
    assert settings.auth.jwks_refresh_seconds == 300.0
    assert settings.policy_file == ""
    assert settings.audit.retention_days == 1096


def test_environment_overrides_gateway_and_source_keys(tmp_path):
    settings = load_settings(write(tmp_path, VALID), env={
        "CREDIT_GATEWAY_MAX_BATCH_KEYS": "50",
        "CREDIT_GATEWAY_GRAPHIQL": "false",
        "CREDIT_GATEWAY_SOURCE_HZ_MARKET_URL": "postgresql+asyncpg://db/market",
        "CREDIT_GATEWAY_SOURCE_HZ_MARKET_TIMEOUT_SECONDS": "0.5",
        "CREDIT_GATEWAY_CONFIG": "ignored here",
        "CREDIT_GATEWAY_AUTH_ALGORITHMS": "ES256, RS256",
        "CREDIT_GATEWAY_AUTH_JWKS_REFRESH_SECONDS": "30",
        "UNRELATED": "x",
    })
    assert settings.max_batch_keys == 50 and settings.graphiql is False
    assert settings.sources[0].url == "postgresql+asyncpg://db/market"
    assert settings.sources[0].timeout_seconds == 0.5
    assert settings.auth.algorithms == ("ES256", "RS256")
    assert settings.auth.jwks_refresh_seconds == 30.0


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (VALID.replace("graphiql", "graphql"), {}, r"\[gateway\]: unknown key\(s\) \['graphql'\]"),
        (VALID + 'colour = "red"\n', {}, r"\[sources.hz-market\]: unknown key\(s\) \['colour'\]"),
        (VALID.replace('city = "惠州"\n', ""), {}, r"missing key\(s\) \['city'\]"),
        (VALID.replace("max_batch_keys = 200", 'max_batch_keys = "many"'), {}, "max_batch_keys must be int"),
        (VALID.replace("max_batch_keys = 200", "max_batch_keys = 0"), {}, "max_batch_keys must be at least 1"),
        (VALID.replace("timeout_seconds = 2", "timeout_seconds = -1"), {}, "must not be negative"),
        (VALID.split("[sources.")[0], {}, "no \\[sources.<id>\\] tables"),
        (VALID.replace("[auth]", "[other_auth]"), {}, r"unknown section\(s\) \['other_auth'\]"),
        ("[gateway]\n[sources.x]\n", {}, r"no \[auth\] table"),
        (VALID.split("[audit]")[0] + "[sources." + VALID.split("[sources.")[1], {},
         r"no \[audit\] table"),
        (VALID.replace('jwks_file = "keys/jwks.json"', 'jwks_url = "https://idp/jwks"\njwks_file = "k"'), {},
         "set exactly one of jwks_file and jwks_url"),
        (VALID.replace('audience = "urn:test:gateway"\n', ""), {}, r"\[auth\]: missing key\(s\) \['audience'\]"),
        (VALID.replace('clients_file = "clients.toml"', "clients_file = 3"), {}, "clients_file must be str"),
        (VALID.replace("[audit]", "[audit_trail]"), {}, r"unknown section\(s\) \['audit_trail'\]"),
        (VALID.replace('subject_key = "0123456789abcdef0123456789abcdef"', 'subject_key = "short"'), {},
         "subject_key must have at least 32 characters"),
        (VALID + "", {"CREDIT_GATEWAY_AUDIT_RETENTION_DAYS": "365"}, "at least 1096"),
        ("[gateway\n", {}, "is not valid TOML"),
        ("[other]\n", {}, r"unknown section\(s\) \['other'\]"),
        (VALID, {"CREDIT_GATEWAY_MAX_BATCH": "5"}, "CREDIT_GATEWAY_MAX_BATCH is not a gateway setting"),
        (VALID, {"CREDIT_GATEWAY_SOURCE_HZ_TAX_URL": "x"}, "names no configured source"),
        (VALID, {"CREDIT_GATEWAY_GRAPHIQL": "maybe"}, "graphiql must be bool"),
        (VALID.replace("[audit]", "jwks_refresh_seconds = 0\n\n[audit]"), {},
         r"\[auth\]: jwks_refresh_seconds must be a positive number of seconds, got 0.0"),
        (VALID.replace("[audit]", "jwks_refresh_seconds = -5\n\n[audit]"), {},
         r"\[auth\]: jwks_refresh_seconds must not be negative"),
        (VALID.replace("[audit]", "jwks_refresh_seconds = inf\n\n[audit]"), {},
         "jwks_refresh_seconds must be a positive number of seconds, got inf"),
        (VALID.replace("[audit]", 'jwks_refresh_seconds = "5m"\n\n[audit]'), {},
         "jwks_refresh_seconds must be float"),
        (VALID, {"CREDIT_GATEWAY_AUTH_JWKS_REFRESH_SECONDS": "soon"}, "jwks_refresh_seconds must be float"),
        (VALID, {"CREDIT_GATEWAY_AUTH_JWKS_REFRESH_SECONDS": "nan"}, "jwks_refresh_seconds must be a positive"),
    ],
)
def test_invalid_configuration_names_the_problem(tmp_path, text, env, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, text), env=env)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", env={})
