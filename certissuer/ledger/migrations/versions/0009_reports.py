"""Signed reports recorded in the ledger (issue 19).

Adds ``ledger_report``, one row per report the lab signed (annual, activity): its period,
title, signer, issue time, the PDF's SHA-256 and the checkpoint it counts, signed with the
lab's ledger key. Reports signed before this revision were not recorded; ``certissuer verify``
says so of them (NOT IN THE LEDGER). No row is removed or altered.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("kind", AutoString(length=20), nullable=False),
        sa.Column("period", AutoString(length=40), nullable=False),
        sa.Column("title", AutoString(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signer", AutoString(), nullable=False),
        sa.Column("pdf_sha256", AutoString(length=64), nullable=False),
        sa.Column("pdf_path", AutoString(), nullable=True),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", AutoString(length=64), nullable=False),
        sa.Column("kid", AutoString(length=16), nullable=False),
        sa.Column("signature", AutoString(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ledger_report_lab_code", "ledger_report", ["lab_code"])
    op.create_index("ix_ledger_report_pdf_sha256", "ledger_report", ["pdf_sha256"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_ledger_report_pdf_sha256", "ledger_report")
    op.drop_index("ix_ledger_report_lab_code", "ledger_report")
    op.drop_table("ledger_report")
