"""The audit trail: records, their subject index and the chain head.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.Text),
        sa.Column("organization", sa.Text),
        sa.Column("purpose", sa.Text),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("subjects", sa.Text, nullable=False),
        sa.Column("released", sa.Text, nullable=False),
        sa.Column("masked", sa.Text, nullable=False),
        sa.Column("denied", sa.Text, nullable=False),
        sa.Column("withheld", sa.Integer, nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("latency_us", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_records_client_id", "audit_records", ["client_id", "seq"])
    op.create_index("ix_audit_records_purpose", "audit_records", ["purpose", "seq"])
    op.create_index("ix_audit_records_recorded_at", "audit_records", ["recorded_at"])
    op.create_table(
        "audit_subjects",
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    )
    op.create_index("ix_audit_subjects_seq", "audit_subjects", ["seq"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_subjects_seq", table_name="audit_subjects")
    op.drop_table("audit_subjects")
    op.drop_index("ix_audit_records_recorded_at", table_name="audit_records")
    op.drop_index("ix_audit_records_purpose", table_name="audit_records")
    op.drop_index("ix_audit_records_client_id", table_name="audit_records")
    op.drop_table("audit_records")
