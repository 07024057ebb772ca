"""A testing lab's accredited scope in the register (issue 22): ``registry_testing_scope``, one
row per parameter × method (optionally over a range) and the accreditation it belongs to.

Until now the testing scope lived only in the lab profile (``[lab] testing_scope``). The new
table starts empty; no existing row is touched.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_testing_scope",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_code", AutoString(length=50), nullable=False),
        sa.Column("parameter", AutoString(length=200), nullable=False),
        sa.Column("method", AutoString(length=200), nullable=False),
        sa.Column("unit", AutoString(length=20), nullable=False),
        sa.Column("lower", AutoString(), nullable=False),
        sa.Column("upper", AutoString(), nullable=False),
        sa.Column("accreditation", AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_registry_testing_scope_lab_code", "registry_testing_scope", ["lab_code"])


def downgrade() -> None:
    op.drop_index("ix_registry_testing_scope_lab_code", "registry_testing_scope")
    op.drop_table("registry_testing_scope")
