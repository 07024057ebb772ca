"""Each lab's paper archive in its profile at the hub (``hub lab-profile --paper-total``):
``hub_lab_profile.paper_total`` and ``paper_as_of``, empty for every existing lab.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hub_lab_profile") as batch:
        batch.add_column(sa.Column("paper_total", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paper_as_of", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hub_lab_profile") as batch:
        batch.drop_column("paper_as_of")
        batch.drop_column("paper_total")
