"""The Merkle tree over the audit records, subject commitments' salts, checkpoints.

A trail migrated with records gets its tree built here: a salt for every
subject index row, a leaf for every record after the anchor (records pruned
before the tree existed are not in it: ``tree_base`` is the anchor), every
complete subtree hash and the frontier in the head. Reads the records in
pages; on a large trail this runs once, for a while, under the migration lock.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PAGE = 1000


def upgrade() -> None:
    from gateway.audit import schema
    from gateway.audit.leaf import leaf_data
    from gateway.audit.merkle import Frontier, leaf_hash
    from gateway.audit.rows import row_record

    op.add_column("audit_subjects", sa.Column("salt", sa.LargeBinary(16), nullable=True))
    op.add_column("audit_head", sa.Column("tree_base", sa.BigInteger, nullable=True))
    op.add_column("audit_head", sa.Column("frontier", sa.LargeBinary, nullable=True))
    op.create_table(
        "audit_tree",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
    )
    conn = op.get_bind()
    subjects = sa.table("audit_subjects", sa.column("subject"), sa.column("seq"),
                        sa.column("salt", sa.LargeBinary))
    base = conn.execute(sa.text("SELECT seq FROM audit_anchor")).scalar() or 0
    frontier, last = Frontier(), base
    while True:
        rows = conn.execute(
            sa.select(schema.records).where(schema.records.c.seq > last)
            .order_by(schema.records.c.seq).limit(PAGE)
        ).mappings().all()
        if not rows:
            break
        nodes = []
        for row in rows:
            record = row_record(row)
            salts = {s: secrets.token_bytes(16) for s in dict.fromkeys(record.entry.subjects)}
            for subject, salt in salts.items():
                conn.execute(subjects.update().where(subjects.c.subject == subject,
                                                     subjects.c.seq == record.seq)
                             .values(salt=salt))
            frontier, added = frontier.extend_with_nodes([leaf_hash(leaf_data(record, salts))])
            nodes.extend(added)
        conn.execute(sa.insert(schema.tree),
                     [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in nodes])
        last = rows[-1]["seq"]
    conn.execute(subjects.update().where(subjects.c.salt.is_(None))
                 .values(salt=secrets.token_bytes(16)))  # rows of no record: verify reports them
    conn.execute(sa.text("UPDATE audit_head SET tree_base = :base, frontier = :frontier"),
                 {"base": base, "frontier": frontier.to_bytes()})
    with op.batch_alter_table("audit_subjects") as batch:
        batch.alter_column("salt", existing_type=sa.LargeBinary(16), nullable=False)
    with op.batch_alter_table("audit_head") as batch:
        batch.alter_column("tree_base", existing_type=sa.BigInteger, nullable=False)
        batch.alter_column("frontier", existing_type=sa.LargeBinary, nullable=False)


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_tree")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("frontier")
        batch.drop_column("tree_base")
    with op.batch_alter_table("audit_subjects") as batch:
        batch.drop_column("salt")
