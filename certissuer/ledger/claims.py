"""Claims: which process is completing a pending entry, or issuing a batch record, right now.

A claim is ``host:pid`` (`this_claimant`). It is free when its process on this host no longer
runs (`process_alive`), or, for another host, when it is older than the lease. Taking a claim
is a compare-and-set on the row, so two processes never take the same entry or record; the
`Ledger` methods of the same names open the transaction these functions run in.

>>> this_claimant()  # doctest: +SKIP
'workstation-3:41277'
"""

import os
import socket
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from certissuer.ledger.tables import BatchClaim, CertificateEntry, utc

__all__ = [
    "claim_entry",
    "claim_is_free",
    "claim_ref",
    "process_alive",
    "release_ref",
    "this_claimant",
    "unclaim",
]


def claim_is_free(
    claim: str, claimed_at: datetime | None, now: datetime, lease_seconds: float
) -> bool:
    """True when `claim` (``host:pid``, or empty), taken at `claimed_at`, may be taken over at
    `now`: it is empty, its process on this host is gone, or (another host) it is older than
    `lease_seconds`."""
    if not claim:
        return True
    host, _, pid = claim.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not process_alive(int(pid))
    claimed = utc(claimed_at) if claimed_at else now
    return (now - claimed).total_seconds() > lease_seconds


def process_alive(pid: int) -> bool:
    """True when process `pid` runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_claimant() -> str:
    """The claim string of this process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_entry(
    s: Session, entry: CertificateEntry, claimant: str, *, now: datetime, lease_seconds: float
) -> bool:
    """Take pending `entry` for `claimant` in session `s` if it is free, and commit.

    Returns True when `claimant` now holds it (also when it already did).
    """
    if entry.claim != claimant and not claim_is_free(
        entry.claim, entry.claimed_at, now, lease_seconds
    ):
        return False
    result = s.execute(
        update(CertificateEntry)
        .where(
            col(CertificateEntry.number) == entry.number,
            col(CertificateEntry.claim) == entry.claim,
            col(CertificateEntry.pdf_sha256).is_(None),
        )
        .values(claim=claimant, claimed_at=now)
    )
    s.commit()
    if getattr(result, "rowcount", 0) != 1:
        return False
    entry.claim, entry.claimed_at = claimant, now
    return True


def claim_ref(
    s: Session, lab_code: str, ref: str, claimant: str, *, now: datetime, lease_seconds: float
) -> bool:
    """Claim input record `ref` of lab `lab_code` for `claimant` in session `s`, and commit.

    An insert into ``batch_claim`` that only one worker can win; a claim whose holder died (or
    whose lease ran out, for another host) is taken over. Returns True when `claimant` holds
    the claim.
    """
    s.add(BatchClaim(lab_code=lab_code, ref=ref, claimed_by=claimant, claimed_at=now))
    try:
        s.commit()
        return True
    except IntegrityError:
        s.rollback()
    held = s.get(BatchClaim, (lab_code, ref))
    if held is None:
        return False  # released meanwhile; the caller may try again later
    if held.claimed_by == claimant:
        return True
    if not claim_is_free(held.claimed_by, held.claimed_at, now, lease_seconds):
        return False
    result = s.execute(
        update(BatchClaim)
        .where(
            col(BatchClaim.lab_code) == lab_code,
            col(BatchClaim.ref) == ref,
            col(BatchClaim.claimed_by) == held.claimed_by,
        )
        .values(claimed_by=claimant, claimed_at=now)
    )
    s.commit()
    return getattr(result, "rowcount", 0) == 1


def release_ref(s: Session, lab_code: str, ref: str, claimant: str) -> None:
    """Give up `claimant`'s claim on record `ref` of lab `lab_code` in session `s`, and commit."""
    s.execute(
        delete(BatchClaim).where(
            col(BatchClaim.lab_code) == lab_code,
            col(BatchClaim.ref) == ref,
            col(BatchClaim.claimed_by) == claimant,
        )
    )
    s.commit()


def unclaim(s: Session, number: str, claimant: str) -> None:
    """Give up `claimant`'s claim on pending entry `number` in session `s`, and commit."""
    s.execute(
        update(CertificateEntry)
        .where(col(CertificateEntry.number) == number, col(CertificateEntry.claim) == claimant)
        .values(claim="", claimed_at=None)
    )
    s.commit()
