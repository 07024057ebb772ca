"""The second signature: the head of the lab approves a verification certificate.

With ``[signing] approval = true`` a verification certificate is issued with a certification
signature by the verifier (DocMDP: form filling and signing allowed) and an empty signature
field over the head's name. `approve_pdf` checks the file first (a head must not approve a
forged or altered certificate), then signs that field as an incremental update and replaces
the file atomically.

Until the head signs, the certificate is not in force: it verifies as CHỜ PHÊ DUYỆT /
AWAITING APPROVAL (the issue logged an ``awaiting_approval`` event, and the file has an empty
field). Only the head printed on the certificate may approve it: the approver's certificate
name must be that name (diacritics, case and spacing aside), checked before signing.

The ledger keeps the SHA-256 of the file as issued. The approved file starts with exactly those
bytes: `certissuer verify` finds it in the ledger through the revision its first signature
covers, after checking that everything added later is a valid signature in the reserved
field, validation data or a document timestamp. The approval itself is a signed ``approved``
event in the ledger, so a scanned QR code says the same as the approved file.

>>> approved = approve_pdf(Path("out/KD-2026-000001.pdf"), sealer=head_sealer,
...                        verifier=verifier, location="Đồng Tháp")  # doctest: +SKIP
>>> approved.signer  # doctest: +SKIP
'Lê Hoàng Phúc'
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from certissuer._files import write_atomic
from certissuer._vn import same_name
from certissuer.config import PdfStore, Role
from certissuer.errors import ConfigError, SignerRefused, SigningError, VerificationFailed
from certissuer.ledger import approval_awaited
from certissuer.sign import (
    APPROVAL_FIELD,
    Keyring,
    Level,
    Sealer,
    public_key_of,
    signer_public_keys,
)
from certissuer.verify import Report, Verdict, Verifier

if TYPE_CHECKING:
    from certissuer.ledger.storage import PdfArchive
    from certissuer.token import TokenKey

__all__ = ["Approved", "approve_pdf", "printed_head", "same_name"]

_logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Approved:
    """An approved certificate file."""

    path: Path
    number: str | None
    signer: str
    pdf_sha256: str
    """SHA-256 of the approved file (the ledger keeps the issued file's)."""
    report: Report
    """The verification of the file before approval."""


def printed_head(verifier: Verifier, number: str | None) -> str | None:
    """The head's name printed on certificate `number`, from its ledger data, or None."""
    if verifier.ledger is None or number is None:
        return None
    entry = verifier.ledger.get(number)
    if entry is None:
        return None
    head = entry.data().get("head")
    name = head.get("name") if isinstance(head, dict) else None
    return str(name) if name else None


def approve_pdf(
    path: Path,
    *,
    sealer: Sealer | None = None,
    keys: Keyring | None = None,
    verifier: Verifier,
    out: Path | None = None,
    field_name: str = APPROVAL_FIELD,
    location: str | None = None,
    level: Level | None = None,
    ledger_key: TokenKey | None = None,
    archive: PdfArchive | None = None,
) -> Approved:
    """Verify the certificate at `path`, then sign its empty field `field_name` with `sealer`
    (or, without one, with the key `keys` holds for the head printed on it).

    `verifier` must find the file genuine and awaiting approval (verdict AWAITING APPROVAL,
    or VALID for a certificate issued before approvals were logged), the name in the
    approving key's certificate must be the head's printed on it, and that key must not be
    the key that made the first signature (two signatures, two keys). The result goes to `out`
    (default: `path`, replaced atomically), and the approval is recorded in the verifier's
    ledger as an event signed with `ledger_key` (default: the ledger's own key). Raises
    `VerificationFailed` when the file cannot be read or does not verify, `SigningError` when
    it has no such empty field or the approver is not the printed head, `ConfigError` when
    the approval cannot be recorded signed; all before anything is signed.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerificationFailed(f"{path}: cannot read the file ({exc.strerror})") from None
    report = verifier.verify_pdf(data)
    # VALID: a certificate issued before approvals were logged in the ledger; the sealer
    # finds out whether its field is still empty.
    if report.verdict not in (Verdict.AWAITING_APPROVAL, Verdict.VALID):
        raise VerificationFailed(
            f"{path}: will not approve a certificate that does not verify: "
            f"{report.label_en} ({report.reasons[-1] if report.reasons else 'no reason'})",
            hint="run 'certissuer verify' on it for the details",
        )
    head = printed_head(verifier, report.number)
    if head is None:
        raise SigningError(
            f"{path}: the ledger holds no head's name for {report.number}: "
            "cannot check who may approve it"
        )
    if sealer is None:
        if keys is None:
            raise ConfigError("approve_pdf needs a sealer or the lab's keys")
        try:
            sealer = keys.for_name(head, Role.HEAD, field="head.name", ref=report.number)
        except SignerRefused as exc:
            raise SigningError(f"{path}: {exc}; nothing was signed", hint=exc.hint) from None
    if not same_name(sealer.signer_name, head):
        raise SigningError(
            f"{path}: the approver's certificate names '{sealer.signer_name}', but the head "
            f"printed on {report.number} is '{head}'; nothing was signed",
            hint="approve with the key of the head named on the certificate",
        )
    first = signer_public_keys(data)
    if first and public_key_of(sealer) == first[0]:
        raise SigningError(
            f"{path}: the approver's key is the key that made the first signature "
            f"('{sealer.signer_name}'); the two signatures need two different keys; nothing "
            "was signed",
            hint="the head approves with their own key",
        )
    ledger = verifier.ledger
    waiting = (
        ledger is not None
        and report.number is not None
        and approval_awaited(ledger.events(report.number)) is not None
    )
    if ledger is not None and waiting and ledger_key is None and ledger.ledger_key is None:
        raise ConfigError(
            f"{path}: the approval of {report.number} must be recorded in the ledger, signed "
            "with the lab's ledger key, and none was given; nothing was signed",
            hint="give the lab's token key ([token] key in the profile)",
        )
    reason = f"Phê duyệt / Approved {report.number}" if report.number else "Phê duyệt / Approved"
    approved = sealer.approve(
        data, field_name=field_name, reason=reason, location=location, level=level
    )
    if not approved.startswith(data):
        raise SigningError("the approval rewrote the document instead of appending to it")
    target = out or path
    try:
        write_atomic(target, approved)
    except OSError as exc:
        raise SigningError(f"{target}: cannot write the approved file ({exc.strerror})") from None
    if ledger is not None and waiting:  # what the ledger awaits (older issues logged none)
        assert report.number is not None
        ledger.approve(report.number, approver=head, at=datetime.now(UTC), ledger_key=ledger_key)
    entry = ledger.get(report.number) if ledger is not None and report.number else None
    if archive is not None and entry is not None and entry.pdf_path:
        # The archive keeps the approved file (it begins with the issued one, checked above):
        # a copy downloaded or restored later carries the head's signature too.
        archived = Path(entry.pdf_path)
        if archive.kind is not PdfStore.FILES or archived.resolve() != target.resolve():
            archive.put(entry.number, archived, approved)
    _logger.info("approved %s by %s -> %s", report.number, sealer.subject, target)
    return Approved(
        target, report.number, sealer.signer_name, hashlib.sha256(approved).hexdigest(), report
    )
