"""The first ledger schema: certificates, number counters, events, failed verifications.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "number_counter",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("series", AutoString(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lab_code", "series", "year"),
    )
    op.create_table(
        "certificate",
        sa.Column("number", AutoString(length=60), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("series", AutoString(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("ref", AutoString(length=100), nullable=False),
        sa.Column("instrument_name", AutoString(), nullable=False),
        sa.Column("instrument_model", AutoString(), nullable=False),
        sa.Column("instrument_serial", AutoString(), nullable=False),
        sa.Column("customer_name", AutoString(), nullable=False),
        sa.Column("work_date", sa.Date(), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_digest", AutoString(length=64), nullable=False),
        sa.Column("data_json", AutoString(), nullable=False),
        sa.Column("token", AutoString(), nullable=False),
        sa.Column("pdf_sha256", AutoString(length=64), nullable=True),
        sa.Column("pdf_path", AutoString(), nullable=True),
        sa.Column("signer", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("lab_code", "series", "year", "seq"),
        sa.UniqueConstraint("lab_code", "ref"),
    )
    op.create_index("ix_certificate_lab_code", "certificate", ["lab_code"])
    op.create_index("ix_certificate_instrument_serial", "certificate", ["instrument_serial"])
    op.create_index("ix_certificate_pdf_sha256", "certificate", ["pdf_sha256"], unique=True)
    op.create_index("ix_certificate_kind", "certificate", ["kind"])
    op.create_table(
        "certificate_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", AutoString(length=60), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", AutoString(), nullable=False),
        sa.Column("related_number", AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["number"], ["certificate.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_certificate_event_number", "certificate_event", ["number"])
    op.create_table(
        "failed_verification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("ref", AutoString(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instrument_serial", AutoString(), nullable=False),
        sa.Column("data_digest", AutoString(length=64), nullable=False),
        sa.Column("data_json", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_failed_verification_lab_code", "failed_verification", ["lab_code"])


def downgrade() -> None:
    for table in ("failed_verification", "certificate_event", "certificate", "number_counter"):
        op.drop_table(table)
