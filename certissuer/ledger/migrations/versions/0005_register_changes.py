"""Change numbers on the register, for the incremental sector export (issue 10).

Owners, instruments, reference standards and personnel get ``change_seq`` and ``changed_at``,
set by triggers on every insert and update (SQLite: a one-row counter; PostgreSQL: a sequence
taken under a lock on that row) (whatever code writes the
row). Existing rows are numbered once, in table order, so the first incremental export after
the upgrade carries them. No row is removed or altered otherwise.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from certissuer.registry.tables import CHANGE_TRACKED, change_tracking_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "register_change_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for statement in change_tracking_sql(dialect):
        op.execute(statement)
    for table in CHANGE_TRACKED:
        op.add_column(table, sa.Column("change_seq", sa.Integer(), nullable=True))
        op.add_column(table, sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
        op.create_index(f"ix_{table}_change_seq", table, ["change_seq"])
        for statement in change_tracking_sql(dialect, table):
            op.execute(statement)
        # fires the new triggers once per existing row: each gets its change number
        op.execute(f"UPDATE {table} SET changed_at = NULL")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in CHANGE_TRACKED:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_change ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_change_lock ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_change_insert")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_change_update")
        op.drop_index(f"ix_{table}_change_seq", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("changed_at")
            batch.drop_column("change_seq")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS register_change()")
        op.execute("DROP FUNCTION IF EXISTS register_change_lock()")
        op.execute("DROP SEQUENCE IF EXISTS register_change_seq")
    op.drop_table("register_change_counter")
