"""Alembic environment of the audit trail.

Run through ``AuditStore.migrate()``, which passes its open connection in
``config.attributes["connection"]``; there is no alembic.ini and no offline
(SQL script) mode. The version table is ``audit_alembic_version`` so the
trail can share a database with other alembic-managed schemas.
"""

from __future__ import annotations

from alembic import context

from gateway.audit.schema import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("audit migrations run through AuditStore.migrate() on a live connection")

context.configure(connection=connection, target_metadata=None, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
