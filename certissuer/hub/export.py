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

`write_hub_export` writes the same export as CSV (a folder: one file per record type) or
XLSX (one sheet per record type), as the labs' ``export sector`` does, with a ``labs`` table
of the registered labs besides. Every cell a lab typed that a spreadsheet would run as a
formula (``=HYPERLINK(...)``) is made inert (`certissuer._tables.inert_cell`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from certissuer._files import write_atomic
from certissuer._tables import inert_cell
from certissuer.hub.catalogue import RECORD_KINDS, HubCounter, HubIndex, LabSummary
from certissuer.hub.store import Hub
from certissuer.hub.tables import HubCertificate, HubRecord
from certissuer.report.sector import COLUMNS, Cursor, SectorFormat, write_record_tables

__all__ = ["COLUMNS_HUB", "FORMAT", "VERSION", "export_hub", "write_hub_export"]

FORMAT = "certissuer-sector-export"
VERSION = "1.2"
"""1.1: a register row carries `lab_code`, the lab that pushed it (instruments too); 1.2: a
certificate carries `data_digest` (when its lab pushed it with one)."""

COLUMNS_HUB: Mapping[str, tuple[str, ...]] = {
    "certificates": COLUMNS["certificates"],
    "instruments": ("lab_code", *COLUMNS["instruments"]),
    "standards": COLUMNS["standards"],
    "inspectors": COLUMNS["inspectors"],
    "labs": (
        "code", "name", "kinds", "scope", "accreditation", "tree_size",
        "certificates", "instruments", "standards", "inspectors",
    ),
}  # fmt: skip
"""The CSV files and XLSX sheets of the hub's export and their columns, in order: the sector
export's (`certissuer.report.sector.COLUMNS`), an instrument led by the lab that pushed it;
then the registered labs (what they do, and how many records of each type the hub holds)."""


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


def _cell(value: Any) -> Any:
    """A pushed value as an inert table cell (a list or object as its JSON text)."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return inert_cell(value)


def write_hub_export(
    data: Mapping[str, Any], labs: Sequence[LabSummary], fmt: SectorFormat, out: Path
) -> list[Path]:
    """Write `data` (from `export_hub`) to `out` in `fmt`; return the files written.

    JSON: the document as `export_hub` gave it. XLSX: an ``export`` sheet with the metadata
    (format, version, cursor, counts), then one sheet per record type and ``labs`` (`labs`,
    the registered labs: all of them, whatever the cursor). CSV: `out` is a folder that gets
    ``export.json`` (the metadata) and one file per sheet, UTF-8 with a byte order mark.
    Columns are `COLUMNS_HUB`, dates ISO as the records carry them.
    """
    if fmt is SectorFormat.JSON:
        write_atomic(out, (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode())
        return [out]
    header = {key: value for key, value in data.items() if key not in RECORD_KINDS}
    records: dict[str, Sequence[Mapping[str, Any]]] = {kind: data[kind] for kind in RECORD_KINDS}
    records["labs"] = [
        {**lab.to_dict(), "kinds": ",".join(lab.kinds), **lab.counts} for lab in labs
    ]
    return write_record_tables(header, records, COLUMNS_HUB, fmt, out, cell=_cell)
