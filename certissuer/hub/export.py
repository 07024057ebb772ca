"""The hub's own sector export: every lab's records in the format of docs/SECTOR-EXPORT.md.

>>> export = export_hub(Hub.open(url), after=Cursor.parse("v1:1907:5123"))  # doctest: +SKIP
>>> export["cursor"]  # doctest: +SKIP
'v1:2210:5400'

The link to the sector's database: the same versioned JSON a lab writes with
``certissuer export sector --format json``, holding what all registered labs pushed. The
hub's cursor ``v1:<log>:<register>`` counts the hub's changes, not one lab's: ``log`` is the
hub's certificate change number, ``register`` its register change number
(`certissuer.hub.catalogue`), so an export from the cursor of the previous one carries
exactly the records stored or changed since, each once, as it is now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from certissuer.hub.catalogue import RECORD_KINDS, HubCounter, HubIndex
from certissuer.hub.store import Hub
from certissuer.hub.tables import HubCertificate, HubRecord
from certissuer.report.sector import Cursor

__all__ = ["FORMAT", "VERSION", "export_hub"]

FORMAT = "certissuer-sector-export"
VERSION = "1.2"
"""1.1: a register row carries `lab_code`, the lab that pushed it (instruments too); 1.2: a
certificate carries `data_digest` (when its lab pushed it with one)."""


def export_hub(
    hub: Hub, *, after: Cursor | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The records `hub` stored or changed after the cursor `after` (everything when None),
    as one sector export, version 1.2 (a JSON-ready dict, ``cursor`` the one to pass next time).

    Raises `LedgerError` when the database fails.
    """
    now = now or datetime.now(UTC)
    start = after or Cursor(0, 0)
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in RECORD_KINDS}
    with hub.session() as s:
        # The counters first: every change numbered up to them has committed (each number
        # is taken under the counter's row lock, held until its push commits).
        ends = {c.name: c.value for c in s.exec(select(HubCounter))}
        end = Cursor(ends.get("log", 0), ends.get("register", 0))
        certs = s.exec(
            select(HubIndex, HubCertificate.record_json)
            .join(
                HubCertificate,
                (col(HubCertificate.lab_code) == col(HubIndex.lab_code))
                & (col(HubCertificate.number) == col(HubIndex.key)),
            )
            .where(
                HubIndex.record == "certificates",
                col(HubIndex.seq) > start.log,
                col(HubIndex.seq) <= end.log,
            )
            .order_by(col(HubIndex.seq))
        )
        out["certificates"] = [json.loads(text) for _, text in certs]
        rows = s.exec(
            select(HubIndex, HubRecord.record_json)
            .join(
                HubRecord,
                (col(HubRecord.lab_code) == col(HubIndex.lab_code))
                & (col(HubRecord.kind) == col(HubIndex.record))
                & (col(HubRecord.key) == col(HubIndex.key)),
            )
            .where(
                HubIndex.record != "certificates",
                col(HubIndex.seq) > start.register,
                col(HubIndex.seq) <= end.register,
            )
            .order_by(col(HubIndex.seq))
        )
        for index, text in rows:
            # The lab that pushed the row: an owner's code is a lab's own, so two labs' rows
            # of one owner code are told apart by it.
            out[index.record].append({**json.loads(text), "lab_code": index.lab_code})
    return {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
        "since": None,
        "after": after.text if after else None,
        "cursor": end.text,
        "counts": {kind: len(out[kind]) for kind in RECORD_KINDS},
        **out,
    }
