"""The tamper-evident log: leaves, head, checkpoints; claims on pending entries.

Existing events become the first leaves, in the order they were recorded, so a ledger from the
first release keeps its whole history under the log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificate") as batch:
        batch.add_column(
            sa.Column("claim", AutoString(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("certificate_event") as batch:
        batch.add_column(sa.Column("pdf_sha256", AutoString(length=64), nullable=True))
    op.create_table(
        "log_leaf",
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("leaf_hash", AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "log_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", AutoString(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kid", AutoString(length=16), nullable=False),
        sa.Column("signature", AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _backfill()


def _backfill() -> None:
    # Data migration: log the events the first schema recorded. The leaf format is the
    # ledger's own (leaf_data version 1).
    from sqlmodel import Session, col, select

    from certissuer import merkle
    from certissuer.ledger import (
        CertificateEntry,
        EventKind,
        LedgerEvent,
        LogHead,
        LogLeaf,
        leaf_data,
    )

    session = Session(bind=op.get_bind())
    size = 0
    for ev in session.exec(select(LedgerEvent).order_by(col(LedgerEvent.id))):
        entry = session.get(CertificateEntry, ev.number)
        if ev.kind == EventKind.ISSUED and entry is not None:
            ev.pdf_sha256 = entry.pdf_sha256
            session.add(ev)
        assert ev.id is not None
        session.add(
            LogLeaf(
                idx=size, event_id=ev.id, leaf_hash=merkle.leaf_hash(leaf_data(ev, entry)).hex()
            )
        )
        size += 1
    session.add(LogHead(id=1, size=size))
    session.flush()


def downgrade() -> None:
    op.drop_table("checkpoint")
    op.drop_table("log_head")
    op.drop_table("log_leaf")
    with op.batch_alter_table("certificate_event") as batch:
        batch.drop_column("pdf_sha256")
    with op.batch_alter_table("certificate") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claim")
