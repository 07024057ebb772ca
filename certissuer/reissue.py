"""Certificates a compromised key made, and their reissue under new numbers.

When a key is compromised since a time T (``certissuer keys compromised KID --since T``),
every token or signature it made from T on verifies as NOT GENUINE (key compromised). The
certificates behind them were genuine; `affected` finds them in the ledger and `reissue`
issues each again from its recorded data, with a new number, a new token and a new
signature by the keys in use, as an amendment: the new certificate says which one it
replaces, the old number gets a ``superseded`` event naming the new one.

>>> key = load_register(settings.token_key, keys).resolve("1a2b3c4d")  # doctest: +SKIP
>>> [(r.old, r.new) for r in reissue(issuer, key)]  # doctest: +SKIP
[('HC-2026-000041', 'HC-2026-000057')]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certissuer._vn import VIETNAM_TZ, local_date
from certissuer.errors import CertissuerError
from certissuer.issue import Issuer
from certissuer.key_register import KeyKind, RegisteredKey
from certissuer.ledger import CertificateEntry, Ledger, Status
from certissuer.model import parse_certificate
from certissuer.token import token_key_id

__all__ = ["Reissued", "affected", "reissue"]

_logger = logging.getLogger(__name__)
_PAGE = 500


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _made_by(entry: CertificateEntry, key: RegisteredKey) -> bool:
    """True when `key` made `entry`'s token or signature at or after it was compromised."""
    since = key.compromised_since
    assert since is not None
    if key.kind is KeyKind.TOKEN:
        return token_key_id(entry.token) == key.kid and entry.issue_date >= local_date(since)
    at = _utc(entry.issued_at)
    inside = (key.not_before is None or at >= key.not_before) and (
        key.not_after is None or at <= key.not_after
    )
    # The ledger records the signer's subject: with several signers, only this key's.
    return at >= since and inside and (not entry.signer or entry.signer == key.label)


def affected(ledger: Ledger, key: RegisteredKey) -> list[CertificateEntry]:
    """The issued certificates whose token or signature `key` made since it was compromised,
    oldest first (none when it is not marked compromised).

    A token key's are those whose token it signed dated from the day of the compromise on; a
    signing certificate's those issued inside its window from the compromise on (by its
    subject, when the ledger names the signer). Raises `LedgerError` if the ledger cannot be
    read.
    """
    if key.compromised_since is None:
        return []
    # Entries come newest first: stop a day before the compromise (issue dates are Vietnam's).
    stop = key.compromised_since - timedelta(days=1)
    found: list[CertificateEntry] = []
    offset = 0
    while True:
        page = ledger.entries(limit=_PAGE, offset=offset)
        found += [e for e in page if not e.is_pending and _made_by(e, key)]
        if len(page) < _PAGE or _utc(page[-1].issued_at) < stop:
            break
        offset += _PAGE
    return sorted(found, key=lambda e: (_utc(e.issued_at), e.number))


@dataclass(frozen=True, slots=True)
class Reissued:
    """What became of one affected certificate."""

    old: str
    new: str | None
    """The new number; None when it was not reissued (see `note`)."""
    note: str = ""
    """Why it was not reissued, or where the new PDF is."""
    refused: bool = False
    """True when it still needs reissuing (not when it was already revoked or superseded)."""


def reissue(issuer: Issuer, key: RegisteredKey, *, now: datetime | None = None) -> list[Reissued]:
    """Issue each certificate `affected` by the compromised `key` again, as an amendment.

    Each gets a new number and replaces the old one, which is superseded (`Issuer.amend`).
    A certificate already revoked or superseded, an electronic copy of paper, a notice of
    failure, and one whose checks refuse it today are not reissued; each says why. A rerun
    finds the superseded ones and reissues nothing twice.
    """
    now = now or datetime.now(UTC)
    today = now.astimezone(VIETNAM_TZ).date()
    reason = (
        f"reissued: the lab's {key.kind.value} key {key.kid[:16]} was compromised "
        f"(cấp lại do khóa bị lộ)"
    )
    done: list[Reissued] = []
    for entry in affected(issuer.ledger, key):
        status, event = issuer.ledger.status(entry, today=today)
        if status in (Status.SUPERSEDED, Status.REVOKED):
            by = f" by {event.related_number}" if event and event.related_number else ""
            done.append(Reissued(entry.number, None, f"already {status.value}{by}"))
            continue
        if entry.kind in ("copy", "failure"):
            done.append(
                Reissued(
                    entry.number,
                    None,
                    f"a {entry.kind} is not reissued: revoke it by hand",
                    refused=True,
                )
            )
            continue
        try:
            cert = parse_certificate(json.loads(entry.data_json), stored=True)
            issued = issuer.amend(entry.number, cert, reason=reason, now=now)
        except CertissuerError as exc:
            _logger.debug("reissue of %s refused", entry.number, exc_info=True)
            done.append(Reissued(entry.number, None, f"not reissued: {exc}", refused=True))
            continue
        done.append(Reissued(entry.number, issued.number, str(issued.path)))
    return done
