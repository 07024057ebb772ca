"""The catalogue keeps a certificate's pushed status when it is no longer valid or awaiting
approval (``hub_catalogue.standing``), so neither is listed as valid. Empty for every existing
row: earlier sector exports never carried either status.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_catalogue") as batch:
        batch.add_column(
            sa.Column("standing", AutoString(length=20), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("hub_catalogue") as batch:
        batch.drop_column("standing")
