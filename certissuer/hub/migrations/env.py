"""Alembic environment: runs on the connection `certissuer.hub.migrations.upgrade` passes in.

The revisions say every column themselves; no models are loaded here (the test suite
compares the migrated schema with the models).
"""

from alembic import context

from certissuer.hub.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the alembic CLI is not how certissuer runs these
    raise RuntimeError("run the hub's migrations through 'certissuer hub upgrade'")
context.configure(
    connection=connection,
    target_metadata=None,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
