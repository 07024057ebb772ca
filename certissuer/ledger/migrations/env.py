"""Alembic environment: runs on the connection `certissuer.ledger.migrations.upgrade` passes in."""

from alembic import context
from sqlmodel import SQLModel

import certissuer.ledger.tables  # (registers the tables)
import certissuer.registry.tables  # noqa: F401  (the register's tables, revision 0004)

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI is not how certissuer runs these
    raise RuntimeError("run migrations through 'certissuer ledger upgrade'")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
