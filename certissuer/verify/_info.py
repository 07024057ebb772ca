"""What a report says about one signature, and how the command line words it.

Kept apart from the checks (`certissuer.verify._pades`) so that a report can be decoded and
printed without importing pyHanko: the command line judges a file in a child process and
prints the report it gets back.

>>> info = SignatureInfo(1, "Signature1", "signature", signer="Lab", valid=True)
>>> describe(info)[0]
'Chữ ký / signature 1 (Signature1): hợp lệ / valid'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from certissuer._vn import local_time

__all__ = ["SIGNATURE_LABELS", "SignatureInfo", "describe"]


@dataclass(slots=True)
class SignatureInfo:
    """What `certissuer verify` reports about one signature or document timestamp."""

    index: int
    field_name: str
    kind: str
    """"signature", "certification" (with its DocMDP permission) or "document timestamp"."""
    signer: str = ""
    signed_at: datetime | None = None
    time_trusted: bool = False
    """True when `signed_at` comes from a trusted timestamp, not the signer's own clock."""
    timestamp_authority: str | None = None
    level: str | None = None
    """PAdES level reached (B-B, B-T, B-LT, B-LTA); None for a document timestamp."""
    trust_path: list[str] = field(default_factory=list)
    """Signer first, trust root last."""
    trusted: bool = False
    revocation: str = ""
    coverage: str = ""
    modification: str = ""
    """What changed after this signature (pyHanko's modification level)."""
    algorithm: str = ""
    valid: bool = False
    problem: str | None = None
    cert_sha256: str = ""
    """SHA-256 (hex) of the signer's certificate (DER): its id in the lab's key register."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        data = asdict(self)
        if self.signed_at is not None:
            data["signed_at"] = self.signed_at.isoformat()
        return data


SIGNATURE_LABELS: dict[str, tuple[str, str]] = {
    "signer": ("Người ký", "Signer"),
    "signed_at": ("Thời điểm ký", "Signing time"),
    "level": ("Mức PAdES", "PAdES level"),
    "trust_path": ("Chuỗi tin cậy", "Trust path"),
    "revocation": ("Tình trạng thu hồi", "Revocation status"),
    "coverage": ("Phạm vi ký", "Signature covers"),
    "modification": ("Thay đổi sau khi ký", "Changes after signing"),
    "algorithm": ("Thuật toán", "Algorithm"),
}
"""Vietnamese and English labels of the per-signature details `certissuer verify` shows."""

_KIND_VI = {
    "signature": "Chữ ký",
    "document timestamp": "Dấu thời gian tài liệu",
    "certification": "Chữ ký chứng thực",
}


def describe(info: SignatureInfo) -> list[str]:
    """Lines describing one signature, each labelled in Vietnamese / English."""
    base = info.kind.split(" (")[0]
    status = "hợp lệ / valid" if info.valid else "KHÔNG hợp lệ / NOT valid"
    lines = [f"{_KIND_VI.get(base, base)} / {info.kind} {info.index} ({info.field_name}): {status}"]
    if info.signed_at is not None:
        source = (
            "dấu thời gian tin cậy / trusted timestamp"
            if info.time_trusted
            else "đồng hồ của người ký / signer's clock"
        )
        when = f"{local_time(info.signed_at).isoformat(timespec='seconds')} ({source})"
    else:
        when = ""
    if info.timestamp_authority and info.kind != "document timestamp":
        when += f", TSA: {info.timestamp_authority}"
    values = {
        "signer": info.signer,
        "signed_at": when,
        "level": info.level or "",
        "trust_path": " → ".join(info.trust_path),
        "revocation": info.revocation,
        "coverage": info.coverage,
        "modification": info.modification,
        "algorithm": info.algorithm,
    }
    for key, value in values.items():
        if value:
            vi, en = SIGNATURE_LABELS[key]
            lines.append(f"    {vi} / {en}: {value}")
    if info.problem:
        lines.append(f"    Vấn đề / Problem: {info.problem}")
    return lines
