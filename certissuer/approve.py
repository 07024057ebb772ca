"""The second signature: the head of the lab approves a verification certificate.

With ``[signing] approval = true`` a verification certificate is issued with a certification
signature by the verifier (DocMDP: form filling and signing allowed) and an empty signature
field over the head's name. `approve_pdf` checks the file first (a head must not approve a
forged or altered certificate), then signs that field as an incremental update and replaces
the file atomically.

The ledger keeps the SHA-256 of the file as issued. The approved file starts with exactly those
bytes: `certissuer verify` finds it in the ledger through the revision its first signature
covers, after checking that everything added later is a valid signature in the reserved
field, validation data or a document timestamp. So nothing in the ledger changes.

>>> approved = approve_pdf(Path("out/KD-2026-000001.pdf"), sealer=head_sealer,
...                        verifier=verifier, location="Đồng Tháp")  # doctest: +SKIP
>>> approved.signer  # doctest: +SKIP
'Lê Hoàng Phúc'
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from certissuer._files import write_atomic
from certissuer.errors import SigningError, VerificationFailed
from certissuer.sign import APPROVAL_FIELD, Level, Sealer
from certissuer.verify import Report, Verifier

__all__ = ["Approved", "approve_pdf"]

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


def approve_pdf(
    path: Path,
    *,
    sealer: Sealer,
    verifier: Verifier,
    out: Path | None = None,
    field_name: str = APPROVAL_FIELD,
    location: str | None = None,
    level: Level | None = None,
) -> Approved:
    """Verify the certificate at `path`, then sign its empty field `field_name` with `sealer`.

    `verifier` must find the file genuine and current (verdict VALID). The result goes to
    `out` (default: `path`, replaced atomically). Raises `VerificationFailed` when the file
    cannot be read or does not verify, `SigningError` when it has no such empty field.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VerificationFailed(f"{path}: cannot read the file ({exc.strerror})") from None
    report = verifier.verify_pdf(data)
    if not report.ok:
        raise VerificationFailed(
            f"{path}: will not approve a certificate that does not verify: "
            f"{report.label_en} ({report.reasons[-1] if report.reasons else 'no reason'})",
            hint="run 'certissuer verify' on it for the details",
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
    _logger.info("approved %s by %s -> %s", report.number, sealer.subject, target)
    return Approved(
        target, report.number, sealer.signer_name, hashlib.sha256(approved).hexdigest(), report
    )
