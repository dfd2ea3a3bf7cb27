"""The chain anchor: where the chain starts once old records are pruned.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    anchor = op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id = 1", name="ck_audit_anchor_single_row"),
    )
    op.bulk_insert(anchor, [{"id": 1, "seq": 0, "hash": GENESIS, "pruned_at": None}])


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT seq FROM audit_anchor")).scalar():
        raise RuntimeError("the audit trail was pruned: without its anchor it no longer verifies")
    op.drop_table("audit_anchor")
