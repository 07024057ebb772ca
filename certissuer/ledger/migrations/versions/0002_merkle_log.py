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


_ENTRY_COLUMNS_0001 = (
    "number",
    "lab_code",
    "series",
    "year",
    "seq",
    "kind",
    "ref",
    "instrument_name",
    "instrument_model",
    "instrument_serial",
    "customer_name",
    "work_date",
    "issue_date",
    "valid_until",
    "issued_at",
    "data_digest",
    "data_json",
    "token",
    "pdf_sha256",
    "pdf_path",
    "signer",
)


def _backfill() -> None:
    # Data migration: log the events the first schema recorded, in the order recorded. Rows
    # are read with plain SQL naming revision 0001's columns (later models have more), then
    # hashed with the ledger's leaf format version 1.
    from certissuer import merkle
    from certissuer.ledger.tables import CertificateEntry, LedgerEvent, leaf_data

    bind = op.get_bind()
    dates = {"work_date", "issue_date", "valid_until"}
    cert_table = sa.table(
        "certificate",
        *[
            sa.column(
                c,
                sa.Date()
                if c in dates
                else sa.DateTime(timezone=True)
                if c == "issued_at"
                else sa.Integer()
                if c in {"year", "seq"}
                else AutoString(),
            )
            for c in _ENTRY_COLUMNS_0001
        ],
    )
    event_table = sa.table(
        "certificate_event",
        sa.column("id", sa.Integer()),
        sa.column("number", AutoString()),
        sa.column("kind", AutoString()),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("reason", AutoString()),
        sa.column("related_number", AutoString()),
    )
    entries = {
        row["number"]: CertificateEntry(**row)
        for row in bind.execute(sa.select(cert_table)).mappings()
    }
    events = bind.execute(sa.select(event_table).order_by(event_table.c.id)).mappings()
    size = 0
    for row in list(events):
        entry = entries.get(row["number"])
        pdf_sha256 = entry.pdf_sha256 if entry is not None and row["kind"] == "issued" else None
        ev = LedgerEvent(**row, pdf_sha256=pdf_sha256)
        if pdf_sha256 is not None:
            bind.execute(
                sa.text("UPDATE certificate_event SET pdf_sha256 = :p WHERE id = :i"),
                {"p": pdf_sha256, "i": row["id"]},
            )
        bind.execute(
            sa.text("INSERT INTO log_leaf (idx, event_id, leaf_hash) VALUES (:x, :e, :h)"),
            {"x": size, "e": row["id"], "h": merkle.leaf_hash(leaf_data(ev, entry)).hex()},
        )
        size += 1
    bind.execute(sa.text("INSERT INTO log_head (id, size) VALUES (1, :n)"), {"n": size})


def downgrade() -> None:
    op.drop_table("checkpoint")
    op.drop_table("log_head")
    op.drop_table("log_leaf")
    with op.batch_alter_table("certificate_event") as batch:
        batch.drop_column("pdf_sha256")
    with op.batch_alter_table("certificate") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claim")
