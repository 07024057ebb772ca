"""The accreditation scope's CMC, and the register's record of the standards each certificate
used (issue 16).

Adds ``registry_scope.cmc`` (the smallest expanded uncertainty the lab may claim in the
line's range, ILAC-P14), ``registry_standard.traceable_to`` and ``calibrated_by`` (what a
standard traces to, as certificates state it), and ``registry_standard_use``, one row per
certificate and reference standard it used, so a lab can list the certificates a faulty
standard served. Existing rows get empty values; no row is removed or altered otherwise.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "registry_scope", sa.Column("cmc", AutoString(), nullable=False, server_default="")
    )
    for name in ("traceable_to", "calibrated_by"):
        op.add_column(
            "registry_standard", sa.Column(name, AutoString(), nullable=False, server_default="")
        )
    op.create_table(
        "registry_standard_use",
        sa.Column("certificate_number", AutoString(length=60), nullable=False),
        sa.Column("standard_id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("used_on", sa.Date(), nullable=False),
        sa.Column("standard_certificate", AutoString(), nullable=False),
        sa.Column("calibration_due", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["standard_id"], ["registry_standard.id"]),
        sa.PrimaryKeyConstraint("certificate_number", "standard_id"),
    )
    op.create_index(
        "ix_registry_standard_use_standard_id", "registry_standard_use", ["standard_id"]
    )
    op.create_index("ix_registry_standard_use_lab_code", "registry_standard_use", ["lab_code"])


def downgrade() -> None:
    op.drop_index("ix_registry_standard_use_lab_code", "registry_standard_use")
    op.drop_index("ix_registry_standard_use_standard_id", "registry_standard_use")
    op.drop_table("registry_standard_use")
    with op.batch_alter_table("registry_standard") as batch:
        batch.drop_column("calibrated_by")
        batch.drop_column("traceable_to")
    with op.batch_alter_table("registry_scope") as batch:
        batch.drop_column("cmc")
