"""Alembic migrations of the ledger schema, run by `Ledger.upgrade` (``certissuer ledger upgrade``).

Revisions live in ``versions/``; each keeps every row. A new database is created from the models
and stamped at the head revision (the test suite checks that the migrations produce exactly the
models' schema).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import SQLModel

__all__ = [
    "FIRST_REVISION",
    "config",
    "head_revision",
    "newest_revision",
    "scripts_config",
    "upgrade",
]

FIRST_REVISION = "0001"
"""The schema of the first release (before migrations were tracked)."""


def scripts_config(folder: Path, connection: Connection | None = None) -> Config:
    """An Alembic config for the migration scripts in `folder` (the ledger's, or the hub's),
    sharing `connection` if given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(folder))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def newest_revision(folder: Path) -> str:
    """The newest revision id of the migration scripts in `folder`."""
    head = ScriptDirectory.from_config(scripts_config(folder)).get_current_head()
    assert head is not None
    return head


def config(connection: Connection | None = None) -> Config:
    """An Alembic config for these scripts, sharing `connection` if given."""
    return scripts_config(Path(__file__).parent, connection)


def head_revision() -> str:
    """The newest revision id."""
    return newest_revision(Path(__file__).parent)


def current_revision(engine: Engine) -> str | None:
    """The revision the database on `engine` is at (None: no Alembic stamp), reading only."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _lock(conn: Connection) -> None:
    # Two workstations opening a new PostgreSQL ledger at once must not both create it.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(7105201)"))


def _raw(conn: Connection) -> Any:
    # The DBAPI connection: PRAGMA foreign_keys is ignored inside a transaction.
    return conn.connection.driver_connection


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Create or upgrade the ledger schema on `engine`; return the revision reached."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite rebuilds a table to alter it; foreign keys must be off (outside any
            # transaction) while it does, and are checked again afterwards.
            _raw(conn).execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                reached = _upgrade(conn, revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("the migration left rows that break a foreign key")
        finally:
            if sqlite:
                _raw(conn).execute("PRAGMA foreign_keys=ON")
    return reached


def _upgrade(conn: Connection, revision: str) -> str:
    _lock(conn)
    current = MigrationContext.configure(conn).get_current_revision()
    if current == head_revision() and revision == "head":
        return current
    tables = set(inspect(conn).get_table_names())
    cfg = config(conn)
    if current is None and "certificate" not in tables and revision == "head":
        import certissuer.ledger.tables
        import certissuer.registry.tables  # noqa: F401  (its tables are part of the schema)

        SQLModel.metadata.create_all(conn)
        # The log's head row exists from the start: appends lock it, and two processes
        # appending their first leaves must not race to create it.
        conn.execute(text("INSERT INTO log_head (id, size) VALUES (1, 0)"))
        command.stamp(cfg, "head")
    else:
        if current is None and "certificate" in tables:
            command.stamp(cfg, FIRST_REVISION)
        command.upgrade(cfg, revision)
    reached = MigrationContext.configure(conn).get_current_revision()
    return reached or ""
