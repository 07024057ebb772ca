"""`Ledger.audit`: recompute the Merkle log from the rows and say what changed, and where."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, select

from certissuer import merkle
from certissuer.ledger import (
    CertificateEntry,
    Checkpoint,
    EventKind,
    LedgerEvent,
    LogLeaf,
    leaf_data,
)
from certissuer.token import TokenPublicKey

if TYPE_CHECKING:
    from certissuer.ledger import Ledger

__all__ = ["AuditReport", "run_audit"]


@dataclass
class AuditReport:
    """What `ledger audit` found. `ok` only when `problems` is empty."""

    log_size: int = 0
    entries: int = 0
    checkpoints_checked: int = 0
    files_checked: int = 0
    files_missing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems


def run_audit(ledger: Ledger, *, keys: Sequence[TokenPublicKey], check_files: bool) -> AuditReport:
    """See `Ledger.audit`."""
    report = AuditReport()
    with ledger.session() as s:
        leaves = list(s.exec(select(LogLeaf).order_by(col(LogLeaf.idx))))
        events = {ev.id: ev for ev in s.exec(select(LedgerEvent))}
        entries = {e.number: e for e in s.exec(select(CertificateEntry))}
        checkpoints = list(s.exec(select(Checkpoint).order_by(col(Checkpoint.id))))
    report.log_size, report.entries = len(leaves), len(entries)
    problems = report.problems

    # 1. The leaf sequence itself: 0, 1, 2, ... with no hole.
    for expected, leaf in enumerate(leaves):
        if leaf.idx != expected:
            problems.append(f"deleted: log leaf {expected} is missing (next is {leaf.idx})")
            break

    # 2. Every leaf against the row it logged.
    stored = {leaf.leaf_hash: leaf.idx for leaf in leaves}
    logged_events: set[int] = set()
    for leaf in leaves:
        logged_events.add(leaf.event_id)
        ev = events.get(leaf.event_id)
        if ev is None:
            problems.append(f"deleted: leaf {leaf.idx}: event row {leaf.event_id} is gone")
            continue
        entry = entries.get(ev.number)
        if ev.kind == EventKind.ISSUED and entry is None:
            problems.append(
                f"deleted: leaf {leaf.idx}: certificate {ev.number} is gone from the ledger"
            )
            continue
        now = merkle.leaf_hash(leaf_data(ev, entry)).hex()
        if hmac.compare_digest(now, leaf.leaf_hash):
            continue
        other = stored.get(now)
        if other is not None:
            problems.append(
                f"reordered: leaf {leaf.idx} ({ev.number}, {ev.kind}) now holds the row "
                f"logged at leaf {other}"
            )
        else:
            problems.append(
                f"edited: leaf {leaf.idx} ({ev.number}, {ev.kind}) differs from what was logged"
            )

    # 3. Rows the log never saw.
    for ev_id, ev in sorted(events.items(), key=lambda kv: kv[0] or 0):
        if ev_id not in logged_events:
            problems.append(
                f"inserted: event row {ev_id} ({ev.number}, {ev.kind}) is not in the log"
            )
    issued = {ev.number for ev in events.values() if ev.kind == EventKind.ISSUED}
    latest_pdf = _latest_pdf_hashes(events.values())
    for number, entry in sorted(entries.items()):
        if not entry.is_pending and number not in issued:
            problems.append(f"inserted: certificate {number} has no issued event in the log")
        if hashlib.sha256(entry.data_json.encode()).hexdigest() != entry.data_digest:
            problems.append(f"edited: certificate {number}: its data no longer match its digest")
        latest = latest_pdf.get(number)
        if not entry.is_pending and latest is not None and latest != entry.pdf_sha256:
            problems.append(f"edited: certificate {number}: its PDF hash differs from the log")

    # 4. Checkpoints: signature, and the root over the stored leaves at that size.
    hashes = [bytes.fromhex(leaf.leaf_hash) for leaf in leaves]
    by_kid = {k.kid.hex(): k for k in keys}
    for cp in checkpoints:
        key = by_kid.get(cp.kid)
        if key is None:
            problems.append(
                f"checkpoint {cp.id} (size {cp.tree_size}): signed by unknown key {cp.kid}"
            )
        elif not key.verify(bytes.fromhex(cp.signature), cp.message()):
            problems.append(f"checkpoint {cp.id} (size {cp.tree_size}): the signature is invalid")
        if cp.tree_size > len(hashes):
            problems.append(
                f"checkpoint {cp.id}: vouches for {cp.tree_size} leaves, the log has {len(hashes)}"
            )
        elif merkle.tree_hash(hashes[: cp.tree_size]).hex() != cp.root_hash:
            problems.append(
                f"checkpoint {cp.id} (size {cp.tree_size}): the log no longer has the root it "
                "vouched for: leaves before it were changed"
            )
        report.checkpoints_checked += 1

    # 5. The PDFs it can reach.
    if check_files:
        for number, entry in sorted(entries.items()):
            if entry.is_pending or not entry.pdf_path:
                continue
            path = Path(entry.pdf_path)
            if not path.exists():
                report.files_missing += 1
                continue
            report.files_checked += 1
            if hashlib.sha256(path.read_bytes()).hexdigest() != entry.pdf_sha256:
                problems.append(f"file: {path} ({number}) differs from the PDF in the ledger")
    return report


def _latest_pdf_hashes(events: Iterable[LedgerEvent]) -> dict[str, str]:
    # The newest event that vouches for a file (issued, or a later signature) names it.
    latest: dict[str, tuple[int, str]] = {}
    for ev in events:
        if ev.pdf_sha256 and ev.id is not None:
            seen = latest.get(ev.number)
            if seen is None or ev.id > seen[0]:
                latest[ev.number] = (ev.id, ev.pdf_sha256)
    return {number: sha for number, (_, sha) in latest.items()}
