"""Batch runs and electronic copies of paper certificates.

Adds the paper certificate number to entries (searchable), the original scan files of a copy
with their SHA-256, and the claims that let several workers share one batch run.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificate") as batch:
        batch.add_column(sa.Column("paper_number", AutoString(length=100), nullable=True))
        batch.create_index("ix_certificate_paper_number", ["paper_number"])
    op.create_table(
        "scan_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", AutoString(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("file_name", AutoString(), nullable=False),
        sa.Column("sha256", AutoString(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["number"], ["certificate.number"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_file_number", "scan_file", ["number"])
    op.create_table(
        "batch_claim",
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("ref", AutoString(length=100), nullable=False),
        sa.Column("claimed_by", AutoString(length=200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lab_code", "ref"),
    )


def downgrade() -> None:
    op.drop_table("batch_claim")
    op.drop_index("ix_scan_file_number", "scan_file")
    op.drop_table("scan_file")
    with op.batch_alter_table("certificate") as batch:
        batch.drop_index("ix_certificate_paper_number")
        batch.drop_column("paper_number")
