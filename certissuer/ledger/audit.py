"""The audit (`Ledger.audit`): recompute the Merkle log from the rows; say what changed, where.

Besides the rows against their log leaves, it checks every event's signature (the lab's ledger
key), every checkpoint stored in the database, and checkpoints saved *outside* it (witnesses:
``ledger checkpoint --out`` files, or another server's ``/api/v1/checkpoint``): someone who can
write the database can delete events, their leaves and the checkpoints after them, but cannot
make the log reproduce a root the lab signed and that is kept elsewhere.

>>> report = run_audit(ledger, keys=[key.public], check_files=True,
...                    witnesses=[load_witness("checkpoint.json")])  # doctest: +SKIP
>>> report.ok  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, assert_never

from sqlmodel import Session, col, select

from certissuer import merkle
from certissuer._files import issued_length
from certissuer.errors import LedgerError
from certissuer.ledger.signatures import (
    CheckpointFault,
    checkpoint_fault,
    checkpoint_problem,
    event_problem,
)
from certissuer.ledger.tables import (
    CertificateEntry,
    Checkpoint,
    EventKind,
    LedgerEvent,
    LogLeaf,
    leaf_data,
    utc,
)
from certissuer.token import TokenPublicKey

if TYPE_CHECKING:
    from certissuer.ledger.storage import PdfArchive

__all__ = ["AuditReport", "SessionSource", "Witness", "load_witness", "run_audit"]

_WITNESS_PATH = "/api/v1/checkpoint"


class SessionSource(Protocol):
    """What the audit reads through: a `Ledger` (its `session`)."""

    def session(self, *, read_only: bool = False) -> AbstractContextManager[Session]:
        """A session on the ledger database."""
        ...


@dataclass(frozen=True, slots=True)
class Witness:
    """A checkpoint kept outside the database, and where it came from."""

    source: str
    checkpoint: Checkpoint


@dataclass
class AuditReport:
    """What `ledger audit` found. `ok` only when `problems` is empty.

    `unvouched` are warnings, not problems: leaves after the newest checkpoint are the normal
    state between an event and the next checkpoint (issue, revoke and amend sign one when they
    finish), and each event's own signature already makes them unforgeable. What no checkpoint
    covers yet can still be *deleted* without trace, so they are always named.
    """

    log_size: int = 0
    entries: int = 0
    checkpoints_checked: int = 0
    witnesses_checked: int = 0
    events_signed: int = 0
    events_signed_at_upgrade: int = 0
    files_checked: int = 0
    files_missing: int = 0
    problems: list[str] = field(default_factory=list)
    unvouched: list[str] = field(default_factory=list)
    """Leaves that no valid checkpoint vouches for yet (warnings)."""

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems


def load_witness(source: str, *, timeout: float = 20.0) -> Witness:
    """The checkpoint saved at `source`: a file (``ledger checkpoint --out``) or the URL of a
    certissuer server, whose ``/api/v1/checkpoint`` is fetched (a URL already ending so is
    fetched as it is).

    The checkpoint's signature is not checked here (`run_audit` does). Raises `LedgerError`
    when it cannot be read.
    """
    if source.startswith(("http://", "https://")):
        import requests

        url = (
            source
            if source.rstrip("/").endswith(_WITNESS_PATH)
            else (source.rstrip("/") + _WITNESS_PATH)
        )
        try:
            response = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise LedgerError(f"witness {url}: cannot fetch the checkpoint ({exc})") from None
        return Witness(url, Checkpoint.from_json(data, origin=f"witness {url}"))
    path = Path(source)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"witness {path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise LedgerError(f"witness {path}: not JSON ({exc})") from None
    return Witness(str(path), Checkpoint.from_json(data, origin=f"witness {path}"))


def run_audit(
    ledger: SessionSource,
    *,
    keys: Sequence[TokenPublicKey],
    check_files: bool,
    witnesses: Sequence[Witness] = (),
    store: PdfArchive | None = None,
) -> AuditReport:
    """Audit the ledger that `ledger` (a `Ledger`) reads; see `Ledger.audit`. The PDFs are
    read through `store` (default: the files at each entry's path)."""
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

    # 3b. Every event's signature: an event without a valid one does not count for status.
    leaf_index = {leaf.event_id: leaf.idx for leaf in leaves}
    for ev_id, ev in sorted(events.items(), key=lambda kv: kv[0] or 0):
        why = event_problem(ev, entries.get(ev.number), keys)
        where = f"leaf {leaf_index[ev_id]}" if ev_id in leaf_index else "not in the log"
        if why is None:
            report.events_signed += 1
            report.events_signed_at_upgrade += ev.backfilled_at is not None
            continue
        kind = "unsigned" if not ev.signature else "forged"
        problems.append(
            f"{kind}: event row {ev_id} ({ev.number}, {ev.kind}, {where}): {why}; "
            "verification ignores it"
        )

    # 4. Checkpoints: signature, and the root over the stored leaves at that size.
    hashes = [bytes.fromhex(leaf.leaf_hash) for leaf in leaves]
    vouched = 0
    for cp in checkpoints:
        why = checkpoint_problem(cp, keys, hashes)
        if why is not None:
            problems.append(f"checkpoint {cp.id} (size {cp.tree_size}): {why}")
        else:
            vouched = max(vouched, cp.tree_size)
        report.checkpoints_checked += 1

    # 4b. Checkpoints kept outside the database: the log must extend each of them.
    for witness in witnesses:
        found = _witness_problems(witness, keys, hashes)
        problems.extend(found)
        if not found:
            vouched = max(vouched, witness.checkpoint.tree_size)
        report.witnesses_checked += 1

    # 4c. Leaves that no checkpoint vouches for yet: they could still vanish without trace.
    if vouched < len(leaves):
        for leaf in leaves[vouched:]:
            ev = events.get(leaf.event_id)
            what = f"{ev.number}, {ev.kind}" if ev is not None else f"event row {leaf.event_id}"
            report.unvouched.append(
                f"unvouched: leaf {leaf.idx} ({what}) is after the newest checkpoint "
                f"(size {vouched}); no checkpoint vouches for it yet"
            )

    # 5. The PDFs it can reach.
    if check_files:
        from certissuer.ledger.storage import FileStore, MissingPdf

        archive = store if store is not None else FileStore()
        for number, entry in sorted(entries.items()):
            if entry.is_pending or not entry.pdf_path:
                continue
            try:
                data = archive.read(entry)
            except MissingPdf:
                report.files_missing += 1
                continue
            report.files_checked += 1
            # An approved certificate is the issued file plus the head's signature.
            if issued_length(data, entry.pdf_sha256 or "") is None:
                problems.append(
                    f"file: {archive.where(entry)} ({number}) differs from the PDF in the ledger"
                )
    return report


def _witness_problems(
    witness: Witness, keys: Sequence[TokenPublicKey], hashes: Sequence[bytes]
) -> list[str]:
    cp = witness.checkpoint
    day = f"{utc(cp.at):%Y-%m-%d}"
    saved = (
        f"the saved checkpoint of {day} ({witness.source}) vouches for {cp.tree_size} leaves "
        f"with root {cp.root_hash}"
    )
    fault = checkpoint_fault(cp, keys, hashes)
    match fault:
        case None:
            return []
        case CheckpointFault.UNKNOWN_KEY:
            return [f"witness: {saved}, but is signed by unknown key {cp.kid}"]
        case CheckpointFault.BAD_SIGNATURE:
            return [f"witness: {saved}, but its signature is invalid"]
        case CheckpointFault.BEYOND_LOG:
            return [f"rollback: {saved}; the log now has {len(hashes)}"]
        case CheckpointFault.ROOT_DIFFERS:
            return [
                f"rollback: {saved}; the log's first {cp.tree_size} leaves now have root "
                f"{merkle.tree_hash(hashes[: cp.tree_size]).hex()}: events it vouched for were "
                "changed or removed"
            ]
        case _:
            assert_never(fault)


def _latest_pdf_hashes(events: Iterable[LedgerEvent]) -> dict[str, str]:
    # The newest event that vouches for a file (issued, or a later signature) names it.
    latest: dict[str, tuple[int, str]] = {}
    for ev in events:
        if ev.pdf_sha256 and ev.id is not None:
            seen = latest.get(ev.number)
            if seen is None or ev.id > seen[0]:
                latest[ev.number] = (ev.id, ev.pdf_sha256)
    return {number: sha for number, (_, sha) in latest.items()}
