"""The verdict an inspector gets, and the report that explains it.

>>> report = Report(Verdict.VALID, number="HC-2026-000001")
>>> report.ok, report.label_en
(True, 'VALID')
>>> Report.from_dict(report.to_dict()) == report
True

`Report.to_dict` and `Report.from_dict` are one encoding: the web page's checking processes send
their reports back through it, and `--json` prints it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from certissuer._vn import dmy, local_date
from certissuer.verify._info import SignatureInfo

__all__ = ["LEDGER_NOT_CONSULTED_EXIT", "NOT_CONSULTED", "VERDICT_LABELS", "Report", "Verdict"]

LEDGER_NOT_CONSULTED_EXIT = 10
"""`verify`'s exit code for `Verdict.LEDGER_NOT_CONSULTED`: neither valid (0) nor another
verdict (1), and no error code (2-9) either."""


class Verdict(StrEnum):
    """The one answer an inspector gets."""

    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    NO_LONGER_VALID = "no_longer_valid"
    """The instrument failed a later verification: a notice of failure was issued."""
    ALTERED = "altered"
    UNKNOWN_SIGNER = "unknown_signer"
    NOT_IN_LEDGER = "not_in_ledger"
    AWAITING_APPROVAL = "awaiting_approval"
    """Genuine and in the ledger, but the head has not signed its approval yet: not in force."""
    TIME_NOT_PROVEN = "time_not_proven"
    """The signature is intact and its signer chains to the lab's roots, but the signer's
    certificate has expired and no trusted timestamp shows it was made while valid (a PAdES
    B-B signature carries only the signer's clock): neither proven genuine nor shown forged."""
    LEDGER_NOT_CONSULTED = "ledger_not_consulted"
    """The QR token's signature checks against the lab's token key, but the ledger was not
    consulted (offline) or could not be reached: the token is the lab's, whether the
    certificate is still in force (not revoked, superseded or expired) is not known."""
    GENUINE_REPORT = "genuine_report"
    """A report of the lab (annual, activity), not a certificate: its signature is intact and
    the lab's, the ledger records the file as signed (a record the lab's ledger key signed),
    and the checkpoint it counts is one the lab signed. Never a VALID certificate."""
    FILE_LEDGER_NOT_CONSULTED = "file_ledger_not_consulted"
    """The PDF's signatures check (intact, the lab's signer) and its QR token, if any, is the
    lab's, but the ledger was not consulted (offline): the file is the lab's, whether it is
    the registered copy and still in force is not known."""
    KEY_COMPROMISED = "key_compromised"
    """The QR token or a signature was made by a lab key after the lab recorded it compromised
    (or at a time that cannot be shown to be before): someone else may have made it."""


VERDICT_LABELS: dict[Verdict, tuple[str, str]] = {
    Verdict.VALID: ("HỢP LỆ", "VALID"),
    Verdict.REVOKED: ("ĐÃ THU HỒI", "REVOKED"),
    Verdict.SUPERSEDED: ("ĐÃ ĐƯỢC THAY THẾ", "SUPERSEDED"),
    Verdict.EXPIRED: ("HẾT HIỆU LỰC", "EXPIRED"),
    Verdict.NO_LONGER_VALID: ("HẾT HIỆU LỰC", "NO LONGER VALID"),
    Verdict.ALTERED: (
        "KHÔNG XÁC THỰC (bị sửa đổi hoặc giả mạo)",
        "NOT GENUINE (altered or forged)",
    ),
    Verdict.UNKNOWN_SIGNER: (
        "KHÔNG XÁC THỰC (người ký không được tin cậy)",
        "NOT GENUINE (unknown signer)",
    ),
    Verdict.NOT_IN_LEDGER: ("KHÔNG CÓ TRONG SỔ CẤP", "NOT IN THE LEDGER"),
    Verdict.AWAITING_APPROVAL: ("CHỜ PHÊ DUYỆT", "AWAITING APPROVAL"),
    Verdict.TIME_NOT_PROVEN: ("KHÔNG CHỨNG MINH ĐƯỢC THỜI ĐIỂM KÝ", "SIGNING TIME NOT PROVEN"),
    Verdict.LEDGER_NOT_CONSULTED: (
        "MÃ QR DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP",
        "QR GENUINE, LEDGER NOT CONSULTED",
    ),
    Verdict.FILE_LEDGER_NOT_CONSULTED: (
        "TỆP DO PHÒNG THÍ NGHIỆM KÝ — CHƯA ĐỐI CHIẾU SỔ CẤP",
        "FILE GENUINE, LEDGER NOT CONSULTED",
    ),
    # Not in FORMS.md yet; worded after the verdicts there.
    Verdict.GENUINE_REPORT: ("BÁO CÁO HỢP LỆ", "GENUINE REPORT"),
    Verdict.KEY_COMPROMISED: (
        "KHÔNG XÁC THỰC (khóa bị lộ)",
        "NOT GENUINE (key compromised)",
    ),
}
"""Vietnamese and English wording of each verdict (FORMS.md)."""

NOT_CONSULTED = frozenset({Verdict.LEDGER_NOT_CONSULTED, Verdict.FILE_LEDGER_NOT_CONSULTED})
"""The verdicts of a genuine QR token or file whose ledger was not consulted (exit 10)."""


@dataclass
class Report:
    """The verdict with its reasons and what was learned about the certificate."""

    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    number: str | None = None
    kind: str | None = None
    pdf_sha256: str | None = None
    signer: str | None = None
    signed_at: datetime | None = None
    issue_date: date | None = None
    valid_until: date | None = None
    instrument: str | None = None
    serial: str | None = None
    customer: str | None = None
    superseded_by: str | None = None
    revocation_reason: str | None = None
    ended_at: datetime | None = None
    """When the event that ended the certificate's validity (its revocation, or the notice of
    failure that made it no longer valid) was recorded: an aware UTC time. People are shown
    its date in Vietnam (`certissuer._vn.local_date`)."""
    data_digest: str | None = None
    """SHA-256 (hex) of the stored certificate data, recomputed, when it matched the token's
    digest and the digest the lab signed: the data any shown field must come from."""
    token_digest: str | None = None
    """The data digest's first 128 bits (hex) as the lab signed them in the QR token: what the
    token itself proves when the ledger's stored data were not consulted."""
    token_kid: str | None = None
    """The id of the lab's token key that signed the QR token."""
    signatures: list[SignatureInfo] = field(default_factory=list)
    """Each signature and document timestamp: signer, time, level, trust path, revocation,
    coverage and what changed after it."""
    report_kind: str | None = None
    """For a report of the lab (`Verdict.GENUINE_REPORT`): its kind as the ledger's signed
    record says (``annual``, ``activity``); None for a certificate."""
    report_period: str | None = None
    """The days the report covers (ISO 8601 interval ``2026-01-01/2026-12-31``)."""
    report_title: str | None = None
    report_issued_at: datetime | None = None
    """When the report was signed and recorded (aware UTC; shown in Vietnam's time)."""
    report_signer: str | None = None
    """The report's signer as the ledger's record names them (the certificate's subject)."""
    checkpoint: str | None = None
    """The checkpoint the report counts, ``"<tree size> <root hex>"``, as its PDF names it."""

    @property
    def ok(self) -> bool:
        """True only for a genuine, unaltered, current certificate."""
        return self.verdict is Verdict.VALID

    @property
    def genuine_report(self) -> bool:
        """True only for a genuine, unaltered report of the lab that the ledger records."""
        return self.verdict is Verdict.GENUINE_REPORT

    @property
    def exit_code(self) -> int:
        """`verify`'s exit code: 0 when valid (or a genuine report of the lab),
        `LEDGER_NOT_CONSULTED_EXIT` (10) for a genuine token or file whose status was not
        checked, 1 for any other verdict."""
        if self.ok or self.genuine_report:
            return 0
        if self.verdict in NOT_CONSULTED:
            return LEDGER_NOT_CONSULTED_EXIT
        return 1

    @property
    def ended(self) -> tuple[str, str] | None:
        """When and why the certificate stopped being in force, Vietnamese and English, with
        the date in Vietnam ("Thu hồi ngày 03/12/2026, lý do: …"); None when it did not."""
        if self.ended_at is None:
            return None
        day = dmy(local_date(self.ended_at))
        if self.verdict is Verdict.REVOKED:
            why = self.revocation_reason
            return (
                f"Thu hồi ngày {day}" + (f", lý do: {why}" if why else ""),
                f"Revoked on {day}" + (f", reason: {why}" if why else ""),
            )
        if self.verdict is Verdict.NO_LONGER_VALID:
            n = self.superseded_by
            return (
                f"Hết hiệu lực từ ngày {day}" + (f" (thông báo số {n})" if n else ""),
                f"No longer valid since {day}" + (f" (notice No. {n})" if n else ""),
            )
        return None

    @property
    def label_vi(self) -> str:
        """The verdict in Vietnamese."""
        return VERDICT_LABELS[self.verdict][0]

    @property
    def label_en(self) -> str:
        """The verdict in English."""
        return VERDICT_LABELS[self.verdict][1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (dates as ISO strings)."""
        data = asdict(self)
        data.update(
            verdict=self.verdict.value, ok=self.ok, label_vi=self.label_vi, label_en=self.label_en
        )
        data["genuine_report"] = self.genuine_report
        for key, value in data.items():
            if isinstance(value, date | datetime):
                data[key] = value.isoformat()
        data["signatures"] = [s.to_dict() for s in self.signatures]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """The report that `to_dict` gave `data` (as a checking process sends it back)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["verdict"] = Verdict(data["verdict"])
        values["reasons"] = [str(r) for r in data.get("reasons", [])]
        for name in ("issue_date", "valid_until"):
            if values.get(name) is not None:
                values[name] = date.fromisoformat(values[name])
        for name in ("signed_at", "ended_at", "report_issued_at"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        signatures = []
        for item in data.get("signatures", []):
            info = dict(item)
            if info.get("signed_at") is not None:
                info["signed_at"] = datetime.fromisoformat(info["signed_at"])
            signatures.append(SignatureInfo(**info))
        values["signatures"] = signatures
        return cls(**values)
