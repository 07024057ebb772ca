"""Signed ledger events (issue 14): key id, signature and "signed at upgrade" on each event.

Each event is signed when it is written with the lab's ledger key (the QR token key), so that
someone with write access to the database but no key cannot add, edit or re-point an event
that verification counts. Rows written before this revision get empty signatures here; they
are signed afterwards, marked with ``backfilled_at``, by ``certissuer ledger upgrade`` (which
holds the lab's key), and only where a checkpoint the lab signed vouches for them
(`certissuer.ledger.Ledger.sign_unsigned`). No row is removed or altered otherwise.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificate_event") as batch:
        batch.add_column(sa.Column("kid", AutoString(length=16), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("signature", AutoString(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("backfilled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificate_event") as batch:
        batch.drop_column("backfilled_at")
        batch.drop_column("signature")
        batch.drop_column("kid")
