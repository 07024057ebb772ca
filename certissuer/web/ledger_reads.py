"""The page's own ledger query, in one place: a certificate's event count, straight through the
database driver.

The page caches the verdict for a genuine token until the certificate's events change; it asks
for their number on every request, so the query skips SQLAlchemy's execution layer, which costs
several times the query itself.

NOTE: this SQL belongs in the ledger (a `Ledger` method); it lives here, alone, until then.

>>> count = EventCounter(ledger)  # doctest: +SKIP
>>> count("HC-2026-000001")  # doctest: +SKIP
1
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from certissuer.errors import LedgerError
from certissuer.ledger import Ledger, LedgerEvent

__all__ = ["EventCounter"]

_EVENT_COUNT = (
    sa_select(func.count())
    .select_from(LedgerEvent)
    .where(col(LedgerEvent.number) == bindparam("number"))
)


class EventCounter:
    """Counts the ledger events of a certificate number; events are only ever appended."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        compiled = _EVENT_COUNT.compile(dialect=ledger.engine.dialect)
        self._sql = str(compiled)
        self._positional = bool(compiled.positional)
        self._driver_error: type[Exception] = getattr(ledger.engine.dialect.dbapi, "Error", OSError)
        """The driver's base error (PEP 249): raw driver calls raise it unwrapped."""

    def __call__(self, number: str) -> int:
        """The number of events recorded for `number`; raises `LedgerError` if the read fails."""
        params: Any = (number,) if self._positional else {"number": number}
        try:
            conn = self.ledger.engine.raw_connection()
            try:
                cursor = conn.cursor()
                cursor.execute(self._sql, params)
                row = cursor.fetchone()
                cursor.close()
            finally:
                conn.close()  # back to the pool, which rolls back (PostgreSQL)
        except (SQLAlchemyError, self._driver_error) as exc:
            raise LedgerError(f"the ledger database failed: {exc}") from exc
        return int(row[0]) if row else 0
