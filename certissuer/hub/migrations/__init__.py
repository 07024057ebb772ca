"""Alembic migrations of the hub's schema, run by `Hub.open` (and ``certissuer hub upgrade``).

The hub keeps its own version table, ``hub_alembic_version``, and only ever touches tables
named ``hub_…``: a hub and a lab's ledger (whose version table is ``alembic_version``) can
share one database. Revisions live in ``versions/``; each keeps every row.

A hub made before its schema was tracked (its tables made by ``create_all``, no version
table) is adopted: revision 0001 creates only the tables it lacks and keeps every row, and
the later revisions upgrade it as any other (the test suite checks that the migrations
produce exactly the models' schema, on SQLite and PostgreSQL).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from certissuer.ledger.migrations import newest_revision, scripts_config

__all__ = ["VERSION_TABLE", "config", "current_revision", "head_revision", "upgrade"]

VERSION_TABLE = "hub_alembic_version"
"""The hub's Alembic version table (a ledger's is ``alembic_version``)."""

_LOCK = 7105222
"""PostgreSQL advisory lock key: two hub processes starting at once upgrade one at a time."""


def config(connection: Connection | None = None) -> Config:
    """An Alembic config for these scripts, sharing `connection` if given."""
    return scripts_config(Path(__file__).parent, connection)


def head_revision() -> str:
    """The newest revision id."""
    return newest_revision(Path(__file__).parent)


def _context(conn: Connection) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})


def current_revision(conn: Connection) -> str | None:
    """The revision the hub database on `conn` is at (None: not tracked yet), reading only."""
    return _context(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Create, adopt or upgrade the hub's schema on `engine`; return the revision reached."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK})"))
        current = current_revision(conn)
        if not (current == head_revision() and revision == "head"):
            command.upgrade(config(conn), revision)
        return current_revision(conn) or ""
