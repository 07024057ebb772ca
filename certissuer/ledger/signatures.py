"""The lab's signatures on the ledger: events and checkpoints, signed and checked.

Every event is signed with the lab's ledger key (the QR token key) over `event_message`; a
verdict counts only events whose signature checks (`Standing`), and a checkpoint vouches for
the log only when its signature checks and the stored leaves reproduce its root.

>>> sign_event(event, entry, lab_key)  # doctest: +SKIP
>>> event_problem(event, entry, [lab_key.public]) is None  # doctest: +SKIP
True
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import assert_never

from certissuer import merkle
from certissuer.ledger.tables import (
    CertificateEntry,
    Checkpoint,
    EventKind,
    LedgerEvent,
    ReportRecord,
    Status,
    event_message,
    report_message,
    utc,
)
from certissuer.token import TokenKey, TokenPublicKey

__all__ = [
    "CheckpointFault",
    "Standing",
    "approval_awaited",
    "checkpoint_fault",
    "checkpoint_problem",
    "event_problem",
    "report_record_problem",
    "sign_event",
    "sign_report_record",
    "status_from",
]


def sign_event(event: LedgerEvent, entry: CertificateEntry | None, signer: TokenKey) -> None:
    """Sign `event` (of `entry`) with the lab's ledger key `signer`, in place."""
    event.kid = signer.public.kid.hex()
    event.signature = signer.sign(event_message(event, entry)).hex()


def event_problem(
    event: LedgerEvent, entry: CertificateEntry | None, keys: Sequence[TokenPublicKey]
) -> str | None:
    """Why `event` cannot be trusted, or None when its signature checks against `keys`.

    For an ``issued`` event the signature also covers the entry's logged fields, so an edited
    entry makes its issued event fail here.
    """
    if not event.signature:
        return "it is not signed by the lab"
    key = next((k for k in keys if k.kid.hex() == event.kid), None)
    if key is None:
        return f"it is signed by an unknown key ({event.kid or 'none'})"
    try:
        signature = bytes.fromhex(event.signature)
    except ValueError:
        return "its signature is not hex"
    if not key.verify(signature, event_message(event, entry)):
        return "its signature does not verify (edited or forged)"
    return None


@dataclass(frozen=True, slots=True)
class Standing:
    """A certificate's status as its *signed* events say (`Ledger.standing`)."""

    status: Status
    event: LedgerEvent | None
    """The signed event that decided the status (revoked, superseded), if any."""
    issued: LedgerEvent | None
    """The signed ``issued`` event that vouches for the entry as it is stored, or None."""
    issued_problem: str | None
    """Why no issued event vouches for the entry (None when one does)."""
    rejected: tuple[tuple[LedgerEvent, str], ...] = ()
    """Events ignored because their signature fails, each with why."""
    approval_requested: bool = False
    """True when a signed ``awaiting_approval`` event says the certificate was issued for
    the head's approval (approved since or not)."""

    @property
    def vouched(self) -> bool:
        """True when a signed issued event vouches for the entry's logged fields."""
        return self.issued is not None


def status_from(
    entry: CertificateEntry,
    events: Sequence[LedgerEvent],
    today: date,
    *,
    at: datetime | None = None,
) -> tuple[Status, LedgerEvent | None]:
    """The status of `entry` on `today` that `events` (oldest first) give, and the event that
    decided it (revoked, superseded, no longer valid), if any.

    With `at`, the status at that moment: events recorded after it have not happened yet
    (a certificate revoked later was not revoked then; one approved later was awaiting).
    """
    if entry.is_pending:
        return Status.PENDING, None
    if at is not None:
        moment = utc(at)
        events = [ev for ev in events if utc(ev.at) <= moment]
    for ev in reversed(events):
        if ev.kind == EventKind.REVOKED:
            return Status.REVOKED, ev
        if ev.kind == EventKind.SUPERSEDED:
            return Status.SUPERSEDED, ev
        if ev.kind == EventKind.FAILED_REVERIFICATION:
            return Status.NO_LONGER_VALID, ev
    if entry.valid_until is not None and today > entry.valid_until:
        return Status.EXPIRED, None
    waiting = approval_awaited(events)
    if waiting is not None:
        return Status.AWAITING_APPROVAL, waiting
    return Status.VALID, None


def approval_awaited(events: Sequence[LedgerEvent]) -> LedgerEvent | None:
    """The ``awaiting_approval`` event of `events` (oldest first) that no ``approved`` event
    followed, or None: the certificate waits for the head's approval."""
    waiting: LedgerEvent | None = None
    for ev in events:
        if ev.kind == EventKind.AWAITING_APPROVAL:
            waiting = ev
        elif ev.kind == EventKind.APPROVED:
            waiting = None
    return waiting


class CheckpointFault(StrEnum):
    """Why a checkpoint does not vouch for a log (`checkpoint_fault`)."""

    UNKNOWN_KEY = "unknown key"
    """It is signed with none of the keys given."""
    BAD_SIGNATURE = "bad signature"
    BEYOND_LOG = "beyond the log"
    """It vouches for more leaves than the log holds."""
    ROOT_DIFFERS = "root differs"
    """The log's first ``tree_size`` leaves no longer have its root."""


def checkpoint_fault(
    cp: Checkpoint, keys: Sequence[TokenPublicKey], hashes: Sequence[bytes]
) -> CheckpointFault | None:
    """Why checkpoint `cp` does not vouch for the log of leaf hashes `hashes`, or None.

    Its signature must check with `keys` and the first ``cp.tree_size`` leaves must reproduce
    its root. `checkpoint_problem` and the audit's witnesses word the answer.
    """
    key = next((k for k in keys if k.kid.hex() == cp.kid), None)
    if key is None:
        return CheckpointFault.UNKNOWN_KEY
    try:
        signature = bytes.fromhex(cp.signature)
    except ValueError:
        signature = b""
    if not key.verify(signature, cp.message()):
        return CheckpointFault.BAD_SIGNATURE
    if cp.tree_size > len(hashes):
        return CheckpointFault.BEYOND_LOG
    if merkle.tree_hash(hashes[: cp.tree_size]).hex() != cp.root_hash:
        return CheckpointFault.ROOT_DIFFERS
    return None


def checkpoint_problem(
    cp: Checkpoint, keys: Sequence[TokenPublicKey], hashes: Sequence[bytes]
) -> str | None:
    """Why checkpoint `cp` does not vouch for the log of leaf hashes `hashes`, or None.

    Its signature must check with `keys` and the first ``cp.tree_size`` leaves must reproduce
    its root.
    """
    fault = checkpoint_fault(cp, keys, hashes)
    match fault:
        case None:
            return None
        case CheckpointFault.UNKNOWN_KEY:
            return f"signed by unknown key {cp.kid}"
        case CheckpointFault.BAD_SIGNATURE:
            return "the signature is invalid"
        case CheckpointFault.BEYOND_LOG:
            return f"vouches for {cp.tree_size} leaves, the log has {len(hashes)}"
        case CheckpointFault.ROOT_DIFFERS:
            return "the log no longer has the root it vouched for: leaves before it were changed"
        case _:
            assert_never(fault)


def sign_report_record(record: ReportRecord, signer: TokenKey) -> None:
    """Sign report `record` with the lab's ledger key `signer`, in place (`report_message`)."""
    record.kid = signer.public.kid.hex()
    record.signature = signer.sign(report_message(record)).hex()


def report_record_problem(record: ReportRecord, keys: Sequence[TokenPublicKey]) -> str | None:
    """Why report `record` cannot be trusted, or None when its signature checks against `keys`.

    The signature covers every field a verdict shows (kind, period, title, signer, issue time,
    the PDF's SHA-256 and the checkpoint), so an edited row fails here.
    """
    if not record.signature:
        return "it is not signed by the lab"
    key = next((k for k in keys if k.kid.hex() == record.kid), None)
    if key is None:
        return f"it is signed by an unknown key ({record.kid or 'none'})"
    try:
        signature = bytes.fromhex(record.signature)
    except ValueError:
        return "its signature is not hex"
    if not key.verify(signature, report_message(record)):
        return "its signature does not verify (edited or forged)"
    return None
