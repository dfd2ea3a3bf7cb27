"""``alembic upgrade head`` for the audit schema, over a connection already open.

No alembic.ini: the Config is built here, with ``script_location`` the
``migrations`` folder next to this module (it must ship with the package).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Serializes migrate() of several processes on PostgreSQL (pg_advisory_xact_lock key).
PG_MIGRATION_LOCK = 0x6175646974  # "audit"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(connection: sa.Connection) -> None:
    """Run in ``AsyncConnection.run_sync`` inside the migrating transaction."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), "head")
