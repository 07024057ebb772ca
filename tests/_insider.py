"""What an insider with write access to the ledger database, and no key, can do: raw SQL.

Each helper edits the rows the way a person at an SQL prompt would (SQLite or PostgreSQL),
computing leaf hashes with the public leaf format where a log entry is forged. None of them
holds the lab's key.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from certissuer import merkle
from certissuer.ledger import Ledger, LedgerEvent, leaf_data


def sql(ledger: Ledger, statement: str, **params: Any) -> None:
    """Run `statement` in one transaction (foreign keys off on SQLite, as a prompt may)."""
    with ledger.engine.begin() as conn:
        if ledger.is_sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.execute(sa.text(statement), params)


def edit_data(ledger: Ledger, number: str, old: str, new: str, *, digest: bool) -> str:
    """Replace `old` with `new` in the stored data of `number`; with `digest`, also store the
    SHA-256 of the edited data (a consistent edit). Returns the edited data."""
    entry = ledger.get(number)
    assert entry is not None and old in entry.data_json
    data = entry.data_json.replace(old, new)
    if digest:
        sql(
            ledger,
            "UPDATE certificate SET data_json = :d, data_digest = :g WHERE number = :n",
            d=data,
            g=hashlib.sha256(data.encode()).hexdigest(),
            n=number,
        )
    else:
        sql(ledger, "UPDATE certificate SET data_json = :d WHERE number = :n", d=data, n=number)
    return data


def roll_back(ledger: Ledger, size: int) -> None:
    """Delete every event from leaf `size` on, their leaves and the checkpoints over them,
    and set the log head back to `size`."""
    with ledger.engine.begin() as conn:
        if ledger.is_sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        for statement in (
            "DELETE FROM certificate_event WHERE id IN "
            "(SELECT event_id FROM log_leaf WHERE idx >= :n)",
            "DELETE FROM log_leaf WHERE idx >= :n",
            "DELETE FROM checkpoint WHERE tree_size > :n",
            "UPDATE log_head SET size = :n",
        ):
            conn.execute(sa.text(statement), {"n": size})


def append_event(
    ledger: Ledger,
    number: str,
    kind: str,
    *,
    at: datetime,
    reason: str = "",
    related_number: str | None = None,
    pdf_sha256: str | None = None,
    kid: str = "",
    random_signature: bool = False,
) -> int:
    """Append an event row and its log leaf, with a correct leaf hash and no valid signature
    (none, or 64 random bytes under `kid`). Returns the leaf index."""
    entry = ledger.get(number)
    ev = LedgerEvent(
        number=number,
        kind=kind,
        at=at,
        reason=reason,
        related_number=related_number,
        pdf_sha256=pdf_sha256,
    )
    leaf = merkle.leaf_hash(leaf_data(ev, entry)).hex()
    signature = secrets.token_bytes(64).hex() if random_signature else ""
    with ledger.engine.begin() as conn:
        size = conn.execute(sa.text("SELECT size FROM log_head WHERE id = 1")).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO certificate_event "
                "(number, kind, at, reason, related_number, pdf_sha256, kid, signature) "
                "VALUES (:n, :k, :at, :r, :rel, :p, :kid, :sig)"
            ).bindparams(sa.bindparam("at", type_=sa.DateTime(timezone=True))),
            {
                "n": number,
                "k": kind,
                "at": at,
                "r": reason,
                "rel": related_number,
                "p": pdf_sha256,
                "kid": kid,
                "sig": signature,
            },
        )
        event_id = conn.execute(sa.text("SELECT max(id) FROM certificate_event")).scalar_one()
        conn.execute(
            sa.text("INSERT INTO log_leaf (idx, event_id, leaf_hash) VALUES (:i, :e, :h)"),
            {"i": size, "e": event_id, "h": leaf},
        )
        conn.execute(sa.text("UPDATE log_head SET size = :s WHERE id = 1"), {"s": size + 1})
    return int(size)
