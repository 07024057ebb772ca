"""The ledger's tables and the canonical bytes that are hashed and signed.

SQLModel tables (one row per certificate, its append-only events, the Merkle log's leaves and
head, signed checkpoints, number counters, claims, scans, failed verifications), and the exact
bytes of a log leaf (`leaf_data`), of an event the lab signs (`event_message`) and of a
checkpoint (`checkpoint_message`). Changing any of these bytes breaks every existing log.

>>> format_number("HC", 2026, 1)
'HC-2026-000001'
"""

import json
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from certissuer.errors import LedgerError

__all__ = [
    "CHECKPOINT_FORMAT",
    "FAILED_REVERIFICATION_EN",
    "FAILED_REVERIFICATION_VI",
    "BatchClaim",
    "CertificateEntry",
    "Checkpoint",
    "EventKind",
    "FailedVerification",
    "LedgerEvent",
    "LedgerLab",
    "LogHead",
    "LogLeaf",
    "NumberCounter",
    "ReportKind",
    "ReportRecord",
    "ScanFile",
    "StampClaim",
    "Status",
    "StoredPdf",
    "checkpoint_json",
    "checkpoint_message",
    "event_message",
    "format_number",
    "leaf_data",
    "report_message",
    "utc",
]


FAILED_REVERIFICATION_VI = "phương tiện đo không đạt khi kiểm định lại"
FAILED_REVERIFICATION_EN = "the instrument failed re-verification"
"""Why a verification certificate is NO LONGER VALID: a later notice of failure names it."""


class Status(StrEnum):
    """A certificate's status, derived from its entry and events, never stored."""

    PENDING = "pending"
    VALID = "valid"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    NO_LONGER_VALID = "no_longer_valid"
    """The instrument failed a later verification: a notice of failure names it."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Issued with an empty field for the head's approval, not approved yet."""


class EventKind(StrEnum):
    """What can happen to a certificate after it is reserved."""

    ISSUED = "issued"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"
    FAILED_REVERIFICATION = "failed_reverify"
    """The instrument failed a later verification (``related_number``: the notice of
    failure); the certificate is no longer valid."""
    AWAITING_APPROVAL = "awaiting_approval"
    """Issued with an empty field for the head's approval (``[signing] approval``): the
    certificate is not in force until an ``approved`` event follows."""
    APPROVED = "approved"
    """The head signed the approval field (``reason``: the approver's name)."""


def utc(dt: datetime) -> datetime:
    """`dt` as an aware UTC datetime (SQLite hands back naive ones)."""
    # everything stored is UTC
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class NumberCounter(SQLModel, table=True):
    """The last number used per lab, series and year; its row is the numbering lock."""

    __tablename__ = "number_counter"
    lab_code: str = Field(primary_key=True, max_length=50)
    series: str = Field(primary_key=True, max_length=20)
    year: int = Field(primary_key=True)
    last: int = 0


class CertificateEntry(SQLModel, table=True):
    """One certificate. Written pending by `reserve_with`; `complete` adds the PDF hash once."""

    __tablename__ = "certificate"
    __table_args__ = (
        UniqueConstraint("lab_code", "series", "year", "seq"),
        UniqueConstraint("lab_code", "ref"),
    )
    number: str = Field(primary_key=True, max_length=60)
    lab_code: str = Field(index=True, max_length=50)
    series: str = Field(max_length=20)
    year: int
    seq: int
    kind: str = Field(index=True, max_length=20)
    ref: str = Field(max_length=100)
    """The input record's reference: the idempotency key."""
    instrument_name: str
    instrument_model: str
    instrument_serial: str = Field(index=True)
    customer_name: str
    work_date: date
    """Verification or calibration date."""
    issue_date: date
    valid_until: date | None = None
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data_digest: str = Field(max_length=64)
    data_json: str
    """Canonical JSON of the certificate data (what the digest covers)."""
    token: str
    pdf_sha256: str | None = Field(default=None, index=True, unique=True, max_length=64)
    pdf_path: str | None = None
    """Where the PDF is (set at reservation, so a crashed issue is completed in place)."""
    signer: str = ""
    paper_number: str | None = Field(default=None, index=True, max_length=100)
    """For an electronic copy of a paper certificate: the paper certificate's own number."""
    claim: str = Field(default="", max_length=200)
    """Who is completing a pending entry: ``host:pid``. Empty once complete."""
    claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )

    @property
    def is_pending(self) -> bool:
        """True until the PDF is written and its hash recorded."""
        return self.pdf_sha256 is None

    def data(self) -> dict[str, Any]:
        """The certificate data as a mapping (parse with `model.parse_certificate`)."""
        value: dict[str, Any] = json.loads(self.data_json)
        return value


class LedgerEvent(SQLModel, table=True):
    """An append-only event: issued, revoked (with reason), superseded (by a number)."""

    __tablename__ = "certificate_event"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(foreign_key="certificate.number", index=True, max_length=60)
    kind: str = Field(max_length=20)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    reason: str = ""
    related_number: str | None = None
    pdf_sha256: str | None = Field(default=None, max_length=64)
    """The PDF's SHA-256 that this event vouches for (issued; a later signature's file)."""
    kid: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    """Key id (hex) of the lab's ledger key that signed the event; empty when unsigned."""
    signature: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    """The lab's signature (hex) over `event_message`; empty when unsigned."""
    backfilled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )
    """When the event was written before events were signed and signed at a later upgrade
    (``certissuer ledger upgrade``); None for an event signed when it was written."""


class LogLeaf(SQLModel, table=True):
    """Leaf `idx` of the RFC 6962 Merkle log: one per event, in append order."""

    __tablename__ = "log_leaf"
    idx: int = Field(primary_key=True)
    event_id: int = Field(unique=True)
    leaf_hash: str = Field(max_length=64)


class LogHead(SQLModel, table=True):
    """The log's size; its single row is locked while a leaf is appended."""

    __tablename__ = "log_head"
    id: int = Field(default=1, primary_key=True)
    size: int = 0


class Checkpoint(SQLModel, table=True):
    """A signed tree head: the lab vouches for (tree size, root hash) at a time."""

    __tablename__ = "checkpoint"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(max_length=50)
    tree_size: int
    root_hash: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    kid: str = Field(max_length=16)
    signature: str = Field(max_length=200)

    def message(self) -> bytes:
        """The bytes the lab signs."""
        return checkpoint_message(self.lab_code, self.tree_size, self.root_hash, utc(self.at))

    def to_json(self) -> dict[str, Any]:
        """The signed checkpoint as published (``/api/v1/checkpoint``) and saved
        (``ledger checkpoint --out``)."""
        return {"format": CHECKPOINT_FORMAT, **checkpoint_json(self)}

    @classmethod
    def from_json(cls, data: Any, *, origin: str) -> "Checkpoint":
        """A checkpoint from `to_json` output; `origin` names where it came from in errors.

        Raises `LedgerError` when `data` is not a checkpoint. The signature is not checked here.
        """
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise LedgerError(f"{origin}: not a certissuer checkpoint ({CHECKPOINT_FORMAT})")
        try:
            cp = cls(
                lab_code=str(data["lab_code"]),
                tree_size=int(data["tree_size"]),
                root_hash=str(data["root_hash"]).lower(),
                at=datetime.fromisoformat(str(data["at"])),
                kid=str(data["kid"]).lower(),
                signature=str(data["signature"]).lower(),
            )
            bytes.fromhex(cp.root_hash + cp.signature + cp.kid)
        except (KeyError, TypeError, ValueError) as exc:
            raise LedgerError(f"{origin}: the checkpoint is malformed ({exc})") from None
        if cp.tree_size < 0 or len(cp.root_hash) != 64:
            raise LedgerError(f"{origin}: the checkpoint is malformed (size or root)")
        return cp


def checkpoint_message(lab_code: str, size: int, root_hex: str, at: datetime) -> bytes:
    """``certissuer-checkpoint/v1`` text: lab, tree size, root (hex) and time, one per line."""
    return (
        f"certissuer-checkpoint/v1\n{lab_code}\n{size}\n{root_hex}\n"
        f"{utc(at).isoformat(timespec='microseconds')}\n"
    ).encode()


_ENTRY_LOGGED = (
    "number",
    "lab_code",
    "series",
    "year",
    "seq",
    "kind",
    "ref",
    "instrument_name",
    "instrument_model",
    "instrument_serial",
    "customer_name",
    "work_date",
    "issue_date",
    "valid_until",
    "issued_at",
    "data_digest",
    "token",
)


_ENTRY_LOGGED_IF_SET = ("paper_number",)


def leaf_data(event: LedgerEvent, entry: CertificateEntry | None) -> bytes:
    """The canonical bytes of a log leaf: the event, and for ``issued`` the entry's fields.

    Editing any logged column afterwards changes this, so `Ledger.audit` finds it.
    """
    record: dict[str, Any] = {
        "v": 1,
        "event": event.kind,
        "number": event.number,
        "at": utc(event.at).isoformat(timespec="microseconds"),
        "reason": event.reason,
        "related_number": event.related_number,
        "pdf_sha256": event.pdf_sha256,
    }
    if event.kind == EventKind.ISSUED and entry is not None:
        for name in _ENTRY_LOGGED_IF_SET:
            if getattr(entry, name) is not None:  # added after v1: absent when unset
                record["entry." + name] = getattr(entry, name)
        for name in _ENTRY_LOGGED:
            value = getattr(entry, name)
            if isinstance(value, datetime):
                value = utc(value).isoformat(timespec="microseconds")
            elif isinstance(value, date):
                value = value.isoformat()
            record["entry." + name] = value
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_message(event: LedgerEvent, entry: CertificateEntry | None) -> bytes:
    """The bytes the lab's ledger key signs for `event`.

    ``certissuer-event/v1``, the event's leaf data (`leaf_data`: the event, its certificate
    number and, for ``issued``, the entry's logged fields, data digest included) and how it was
    signed, one per line. The prefix keeps these signatures apart from the token's and the
    checkpoints' made with the same key; the last line makes "signed at upgrade" a signed fact.
    """
    how = (
        "signed-at-upgrade " + utc(event.backfilled_at).isoformat(timespec="microseconds")
        if event.backfilled_at is not None
        else "signed-when-written"
    )
    return b"certissuer-event/v1\n" + leaf_data(event, entry) + b"\n" + how.encode() + b"\n"


CHECKPOINT_FORMAT = "certissuer-checkpoint/v1"
"""``format`` of a published or saved checkpoint (`Checkpoint.to_json`)."""


class ScanFile(SQLModel, table=True):
    """An original scan behind an electronic copy, with the SHA-256 of the file as received."""

    __tablename__ = "scan_file"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(foreign_key="certificate.number", index=True, max_length=60)
    position: int
    file_name: str
    sha256: str = Field(max_length=64)
    pages: int


class BatchClaim(SQLModel, table=True):
    """Which worker is issuing an input record (lab, ref) of a batch run right now."""

    __tablename__ = "batch_claim"
    lab_code: str = Field(primary_key=True, max_length=50)
    ref: str = Field(primary_key=True, max_length=100)
    claimed_by: str = Field(max_length=200)
    claimed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class FailedVerification(SQLModel, table=True):
    """An instrument that failed verification: its results are kept, no certificate is issued."""

    __tablename__ = "failed_verification"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    ref: str = Field(max_length=100)
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    instrument_serial: str
    data_digest: str = Field(max_length=64)
    data_json: str


class LedgerLab(SQLModel, table=True):
    """The lab a ledger belongs to (issue 16: one lab, one ledger): its single row.

    Written by the first `Ledger.open` that names a lab (a new ledger, or an older one that
    adopts the first lab opening it); a profile of another lab code is refused afterwards.
    """

    __tablename__ = "ledger_lab"
    id: int = Field(default=1, primary_key=True)
    lab_code: str = Field(max_length=50)
    profile: str = ""
    """The lab profile (absolute path) the ledger was made for; empty when it was opened
    without one."""
    bound_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    adopted: bool = False
    """True when the ledger existed before it knew its lab (it took the first lab opening it)."""


class StampClaim(SQLModel, table=True):
    """A verification stamp number used by a certificate; the key makes it once per lab.

    Written in the transaction that reserves the certificate's number, so of two processes
    issuing the same stamp exactly one commits, and the other takes no number. An amended
    certificate takes over the stamp of the one it replaces (`replaced`).
    """

    __tablename__ = "ledger_stamp"
    lab_code: str = Field(primary_key=True, max_length=50)
    series: str = Field(primary_key=True, max_length=40)
    """The stamp's series as `certissuer.registry.parse_stamp` splits it ("ĐT-26")."""
    number: int = Field(primary_key=True)
    certificate: str = Field(foreign_key="certificate.number", index=True, max_length=60)
    """The certificate that holds the stamp now."""
    replaced: str | None = Field(default=None, max_length=60)
    """The certificate that held it before, when `certificate` amends it."""


class StoredPdf(SQLModel, table=True):
    """A signed PDF kept in the ledger's own database (``[ledger] pdf_store = "database"``).

    Written before the certificate's entry is completed, so a completed entry always has its
    row; a row whose entry was given back (an issue that failed) is overwritten when the
    number is issued again. No foreign key for that reason.
    """

    __tablename__ = "ledger_pdf"
    number: str = Field(primary_key=True, max_length=60)
    sha256: str = Field(max_length=64)
    """SHA-256 of `data` as stored (the ledger's `pdf_sha256` is that of the issued file)."""
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    stored_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def format_number(series: str, year: int, seq: int) -> str:
    """The printed number: ``<series>-<year>-<seq:06d>``."""
    return f"{series}-{year}-{seq:06d}"


def checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    """The fields of `cp` as JSON values (without ``format``)."""
    return {
        "lab_code": cp.lab_code,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "at": utc(cp.at).isoformat(timespec="microseconds"),
        "kid": cp.kid,
        "signature": cp.signature,
    }


class ReportKind(StrEnum):
    """The reports a lab signs and records (`ReportRecord`)."""

    ANNUAL = "annual"
    """The annual measurement report (``certissuer report annual``)."""
    ACTIVITY = "activity"
    """The service provider's activity report, form 5.BCHĐ (``certissuer report activity``)."""


class ReportRecord(SQLModel, table=True):
    """A signed report of the lab (issue 19): what it is, the checkpoint it counts, its hash.

    Reports are no certificates: they take no number, no entry and no event of the Merkle log
    (whose leaves are certificate events, counted by the reports themselves). The row is signed
    with the lab's ledger key over `report_message` instead, so that a row inserted or edited by
    someone with write access to the database but without the key does not count.
    """

    __tablename__ = "ledger_report"
    id: int | None = Field(default=None, primary_key=True)
    lab_code: str = Field(index=True, max_length=50)
    kind: str = Field(max_length=20)
    """A `ReportKind`."""
    period: str = Field(max_length=40)
    """The days reported, as an ISO 8601 interval: ``2026-01-01/2026-12-31``."""
    title: str
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    signer: str
    """The signing certificate's subject (as a certificate's ``signer``)."""
    pdf_sha256: str = Field(index=True, unique=True, max_length=64)
    """SHA-256 (hex) of the signed PDF, as written."""
    pdf_path: str | None = None
    """Where the PDF was written (not signed: files move)."""
    tree_size: int
    """The checkpoint the report counts (the PDF's ``CertissuerCheckpoint`` entry)."""
    root_hash: str = Field(max_length=64)
    kid: str = Field(default="", max_length=16)
    """Key id (hex) of the lab's ledger key that signed the row; empty when unsigned."""
    signature: str = Field(default="", max_length=200)
    """The lab's signature (hex) over `report_message`; empty when unsigned."""


def report_message(record: ReportRecord) -> bytes:
    """The bytes the lab's ledger key signs for `record`: ``certissuer-report/v1`` and the
    record's fields as canonical JSON (every column but ``id``, ``pdf_path`` and the signature).

    The prefix keeps these signatures apart from the events', the checkpoints' and the
    token's, made with the same key.
    """
    fields = {
        "v": 1,
        "lab_code": record.lab_code,
        "kind": record.kind,
        "period": record.period,
        "title": record.title,
        "issued_at": utc(record.issued_at).isoformat(timespec="microseconds"),
        "signer": record.signer,
        "pdf_sha256": record.pdf_sha256,
        "tree_size": record.tree_size,
        "root_hash": record.root_hash,
    }
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b"certissuer-report/v1\n" + body.encode() + b"\n"
