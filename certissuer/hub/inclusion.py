"""Each pushed certificate record, proven in the lab's log.

A push carries, per certificate record, the log leaves of its events below the checkpoint it
carries: for each, the leaf index, the leaf data exactly as the lab's ledger hashes them
(`certissuer.ledger.leaf_data`) and the RFC 9162 audit path to the checkpoint's root
(`certificate_leaves`, the lab's side). The hub (`record_problem`) checks every path against
the signed checkpoint and then the record against its leaves: the fields the log holds (the
issued event's entry fields, data digest included; revocation; supersession; the newest leaf's
index and time) must be the record's. So a record changed after it was logged, or one whose
leaf is not in the checkpointed tree, is refused even when the push itself carries the lab's
signature.

>>> leaves = certificate_leaves(
...     ledger, ["HC-2026-000001"], ledger.leaf_hashes(cp.tree_size), below=cursor.log
... )  # doctest: +SKIP
>>> record_problem(record, leaves["HC-2026-000001"], cp.tree_size, root)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from certissuer import merkle
from certissuer.ledger import CertificateEntry, EventKind, Ledger, LedgerEvent, LogLeaf, leaf_data

__all__ = ["LOGGED_FIELDS", "certificate_leaves", "record_problem"]

LOGGED_FIELDS = (
    "lab_code",
    "kind",
    "issue_date",
    "work_date",
    "valid_until",
    "instrument_name",
    "instrument_model",
    "instrument_serial",
    "customer_name",
    "paper_number",
    "issued_at",
    "data_digest",
)
"""The record's fields its issued leaf holds as ``entry.<field>``."""

_CHUNK = 500


def certificate_leaves(
    ledger: Ledger, numbers: Iterable[str], hashes: Sequence[bytes], *, below: int
) -> dict[str, list[dict[str, Any]]]:
    """The log leaves below index `below` (the export's cursor: the events its records were
    read from) of the events of each certificate in `numbers`, in the tree of the leaf hashes
    `hashes` (the checkpoint's), in log order: ``{"index", "leaf", "path"}`` with the leaf
    data as the ledger's rows give them now and the audit path (hex)."""
    size = min(len(hashes), below)
    wanted = sorted(set(numbers))
    rows: list[tuple[int, LedgerEvent, CertificateEntry]] = []
    with ledger.session(read_only=True) as s:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows.extend(
                (leaf.idx, ev, entry)
                for leaf, ev, entry in s.exec(
                    select(LogLeaf, LedgerEvent, CertificateEntry)
                    .join(LedgerEvent, col(LedgerEvent.id) == col(LogLeaf.event_id))
                    .join(CertificateEntry, col(CertificateEntry.number) == col(LedgerEvent.number))
                    .where(col(LedgerEvent.number).in_(chunk), col(LogLeaf.idx) < size)
                    .order_by(col(LogLeaf.idx))
                )
            )
    paths = merkle.inclusion_proofs((idx for idx, _, _ in rows), hashes)
    out: dict[str, list[dict[str, Any]]] = {}
    for idx, ev, entry in sorted(rows, key=lambda r: r[0]):
        out.setdefault(ev.number, []).append(
            {
                "index": idx,
                "leaf": leaf_data(ev, entry).decode(),
                "path": [h.hex() for h in paths[idx]],
            }
        )
    return out


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_TIMES = ("issued_at", "revoked_at", "changed_at")
"""Fields compared as instants: a database may print a time its own way."""


def _same(name: str, pushed: Any, logged: Any) -> bool:
    """Equal; a time (`_TIMES`) as the same instant."""
    if pushed == logged:
        return True
    if name in _TIMES and isinstance(pushed, str) and isinstance(logged, str):
        try:
            return _instant(pushed) == _instant(logged)
        except ValueError:
            return False
    return False


def _latest(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def record_problem(record: dict[str, Any], proof: Any, size: int, root: bytes) -> str | None:
    """Why certificate `record` (a pushed sector-export record) is not proven by `proof` (its
    leaves, as `certificate_leaves` gives them) in the log of `size` leaves with `root`; None
    when it is: every leaf is in the tree and the record's logged fields are the leaves'."""
    if not isinstance(proof, list) or not proof:
        return "the push carries no proof of its inclusion in the lab's log"
    leaves: list[tuple[int, dict[str, Any]]] = []
    for item in proof:
        if not isinstance(item, dict):
            return "its inclusion proof is malformed"
        index, text, path = item.get("index"), item.get("leaf"), item.get("path")
        if not isinstance(index, int) or not isinstance(text, str) or not isinstance(path, list):
            return "its inclusion proof is malformed"
        try:
            hashes = [bytes.fromhex(str(h)) for h in path]
            data = json.loads(text)
        except ValueError:
            return f"its inclusion proof of log index {index} is malformed"
        if not merkle.verify_inclusion(index, size, merkle.leaf_hash(text.encode()), hashes, root):
            return (
                f"its leaf at log index {index} is not in the lab's checkpointed log of size "
                f"{size}: the inclusion proof does not check (the record was changed after it "
                "was logged; at the lab, certissuer ledger audit names the row)"
            )
        if not isinstance(data, dict) or data.get("number") != record.get("number"):
            return f"the leaf at log index {index} is another certificate's"
        leaves.append((index, data))
    if len({i for i, _ in leaves}) != len(leaves):
        return "its inclusion proof repeats a leaf"
    issued = [d for _, d in leaves if d.get("event") == EventKind.ISSUED.value]
    if len(issued) != 1:
        return "its inclusion proof carries no issued event"

    def events(kind: EventKind) -> list[dict[str, Any]]:
        return [d for _, d in leaves if d.get("event") == kind.value]

    expected: dict[str, Any] = {f: issued[0].get("entry." + f) for f in LOGGED_FIELDS}
    expected["pdf_sha256"] = issued[0].get("pdf_sha256")
    revoked = events(EventKind.REVOKED)
    expected["revoked_at"] = _latest(d.get("at") for d in revoked)
    expected["revocation_reason"] = _latest(d.get("reason") for d in revoked)
    expected["superseded_by"] = _latest(
        d.get("related_number") for d in events(EventKind.SUPERSEDED)
    )
    expected["log_index"] = max(i for i, _ in leaves)
    expected["changed_at"] = max((d.get("at") or "" for _, d in leaves), key=_order)
    for name, logged in expected.items():
        if not _same(name, record.get(name), logged):
            return (
                f"its {name} is {record.get(name)!r} in the push, {logged!r} in the lab's log: "
                "the record was changed after it was logged"
            )
    allowed = _statuses(expected["pdf_sha256"] is not None, leaves)
    if record.get("status") not in allowed:
        return f"its status {record.get('status')!r} is not the one its logged events give"
    return None


_ENDING = {
    EventKind.REVOKED.value: "revoked",
    EventKind.SUPERSEDED.value: "superseded",
    EventKind.FAILED_REVERIFICATION.value: "no_longer_valid",
}
"""Events after which a certificate is no longer in force, and the status each gives."""


def _statuses(completed: bool, leaves: Sequence[tuple[int, dict[str, Any]]]) -> tuple[str, ...]:
    """The statuses a record may carry with these logged events (`ledger.status_from`): the
    newest ending event decides; else expired, or awaiting approval while no approval followed
    the wait, or valid (expired or not depends on the day of the export)."""
    if not completed:
        return ("pending",)
    ordered = sorted(leaves, key=lambda leaf: leaf[0])
    ending = [_ENDING[d["event"]] for _, d in ordered if d.get("event") in _ENDING]
    if ending:
        return (ending[-1],)
    waiting = False
    for _, d in ordered:
        if d.get("event") == EventKind.AWAITING_APPROVAL.value:
            waiting = True
        elif d.get("event") == EventKind.APPROVED.value:
            waiting = False
    return ("awaiting_approval", "expired") if waiting else ("valid", "expired")


def _order(value: Any) -> datetime:
    try:
        return _instant(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
