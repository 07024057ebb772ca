"""Where signed PDFs are archived: one interface, two stores (``[ledger] pdf_store``).

``files`` (the default) keeps each PDF in the output folder it was issued to, at the absolute
path the ledger records (`CertificateEntry.pdf_path`). ``database`` keeps it in the ledger's own
database (table ``ledger_pdf``), so several workstations and the verification page share one
archive through one PostgreSQL server, without a shared disk. Issuing writes through `put`;
``ledger get``, the page's download, the audit and backups read through `read`.
`migrate_files` copies an archive from one store to the other, checking every hash.

>>> store = open_store(ledger, PdfStore.DATABASE)  # doctest: +SKIP
>>> store.put("HC-2026-000001", Path("out/HC-2026-000001.pdf"), signed)  # doctest: +SKIP
>>> store.read(ledger.get("HC-2026-000001")) == signed  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, assert_never

from sqlmodel import col, select

from certissuer._files import issued_length, write_atomic
from certissuer._vn import file_stem
from certissuer.config import PdfStore
from certissuer.errors import LedgerError
from certissuer.ledger.tables import CertificateEntry, StoredPdf

if TYPE_CHECKING:
    from certissuer.ledger.audit import SessionSource

__all__ = [
    "DatabaseStore",
    "FileStore",
    "MigrationReport",
    "MissingPdf",
    "PdfArchive",
    "complete_entries",
    "migrate_files",
    "open_store",
    "repoint",
]

_logger = logging.getLogger(__name__)


class MissingPdf(LedgerError):
    """The archive has no PDF for a certificate (a lost file, a row never written)."""


class PdfArchive(Protocol):
    """A store of signed PDFs, keyed by certificate number (and, for files, its path)."""

    @property
    def kind(self) -> PdfStore:
        """Which store this is."""
        ...

    def put(self, number: str, path: Path, data: bytes) -> None:
        """Store `data`, the signed PDF of `number`, whole or not at all; `path` is where
        the ledger records it (the file itself for ``files``)."""
        ...

    def discard(self, number: str, path: Path) -> None:
        """Remove what `put` stored for `number` (its issue failed after the PDF was stored),
        so no PDF is left without its ledger row."""
        ...

    def read(self, entry: CertificateEntry) -> bytes:
        """The archived bytes of `entry`'s PDF; `MissingPdf` when there are none."""
        ...

    def where(self, entry: CertificateEntry) -> str:
        """Where `entry`'s PDF is, as a person reads it in a message."""
        ...


@dataclass(frozen=True, slots=True)
class FileStore:
    """PDFs as files, at the path each entry records."""

    kind: PdfStore = PdfStore.FILES

    def put(self, number: str, path: Path, data: bytes) -> None:
        """Write `data` to `path` atomically (temporary file, flush, rename)."""
        write_atomic(path, data)

    def discard(self, number: str, path: Path) -> None:
        """Delete the file at `path`, if there is one."""
        path.unlink(missing_ok=True)

    def read(self, entry: CertificateEntry) -> bytes:
        """The file at `entry.pdf_path`."""
        if not entry.pdf_path:
            raise MissingPdf(f"certificate {entry.number} records no PDF file")
        try:
            return Path(entry.pdf_path).read_bytes()
        except OSError as exc:
            raise MissingPdf(f"{entry.pdf_path}: {exc.strerror}") from None

    def where(self, entry: CertificateEntry) -> str:
        """The file's path."""
        return entry.pdf_path or "(no path)"


@dataclass(frozen=True, slots=True)
class DatabaseStore:
    """PDFs in the ledger's own database, table ``ledger_pdf``."""

    ledger: SessionSource
    kind: PdfStore = PdfStore.DATABASE

    def put(self, number: str, path: Path, data: bytes) -> None:
        """Insert or replace the row of `number` in one transaction."""
        row = StoredPdf(
            number=number,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            data=data,
            stored_at=datetime.now(UTC),
        )
        with self.ledger.session() as s:
            # A number given back after a failed issue may have left a row: replace it.
            s.merge(row)
            s.commit()

    def discard(self, number: str, path: Path) -> None:
        """Delete the row of `number`, if there is one."""
        with self.ledger.session() as s:
            row = s.get(StoredPdf, number)
            if row is not None:
                s.delete(row)
                s.commit()

    def read(self, entry: CertificateEntry) -> bytes:
        """The stored bytes of `entry.number`, checked against the SHA-256 stored with them."""
        with self.ledger.session(read_only=True) as s:
            row = s.get(StoredPdf, entry.number)
        if row is None:
            raise MissingPdf(f"the ledger database holds no PDF of {entry.number}")
        data = bytes(row.data)
        if hashlib.sha256(data).hexdigest() != row.sha256:
            _logger.error("%s: the stored PDF differs from its stored SHA-256", entry.number)
        return data

    def where(self, entry: CertificateEntry) -> str:
        """The row, named for a person."""
        return f"ledger database, PDF of {entry.number}"


def open_store(ledger: SessionSource, kind: PdfStore) -> PdfArchive:
    """The store `kind` (``[ledger] pdf_store``) of `ledger`'s PDFs."""
    match kind:
        case PdfStore.FILES:
            return FileStore()
        case PdfStore.DATABASE:
            return DatabaseStore(ledger)
        case _:
            assert_never(kind)


def complete_entries(ledger: SessionSource) -> list[CertificateEntry]:
    """Every entry with a signed PDF (pending ones have none), by number."""
    with ledger.session(read_only=True) as s:
        return list(
            s.exec(
                select(CertificateEntry)
                .where(col(CertificateEntry.pdf_sha256).is_not(None))
                .order_by(col(CertificateEntry.number))
            )
        )


def repoint(ledger: SessionSource, paths: Mapping[str, str]) -> None:
    """Record new file paths (`paths`: number → absolute path) for restored or moved PDFs.

    `pdf_path` is not logged (it is where the file is, not what was issued), so the log and
    every event signature stay as they are.
    """
    with ledger.session() as s:
        for number, path in paths.items():
            entry = s.get(CertificateEntry, number)
            if entry is not None:
                entry.pdf_path = path
                s.add(entry)
        s.commit()


@dataclass
class MigrationReport:
    """What `migrate_files` copied."""

    copied: int = 0
    bytes: int = 0
    paths: dict[str, str] = field(default_factory=dict)
    """number → new file path (moving to ``files``)."""


def migrate_files(
    ledger: SessionSource,
    *,
    to: PdfStore,
    archive: Path,
    progress: Callable[[str], None] | None = None,
) -> MigrationReport:
    """Copy every signed PDF of `ledger` into the store `to`, checking every hash.

    Each PDF is read from the other store and must be the file the ledger recorded (its
    SHA-256, or that file plus later signatures, `issued_length`); if any is missing or
    differs, `LedgerError` names them all and nothing is copied. Each copy is read back and
    hashed again. Moving to ``files`` writes ``archive/<number>.pdf`` and records that path.
    The source is left as it is (remove it once a backup holds the new archive).
    """
    source = open_store(ledger, PdfStore.DATABASE if to is PdfStore.FILES else PdfStore.FILES)
    target = open_store(ledger, to)
    entries = complete_entries(ledger)
    bad: list[str] = []
    found: list[tuple[CertificateEntry, bytes]] = []
    for entry in entries:
        try:
            data = source.read(entry)
        except MissingPdf as exc:
            bad.append(f"{entry.number}: missing ({exc})")
            continue
        if issued_length(data, entry.pdf_sha256 or "") is None:
            bad.append(f"{entry.number}: {source.where(entry)} is not the PDF the ledger recorded")
            continue
        found.append((entry, data))
    if bad:
        raise LedgerError(
            f"{len(bad)} PDF(s) cannot be moved, nothing was copied: " + "; ".join(bad),
            hint="run 'certissuer ledger audit' and restore those files from a backup",
        )
    report = MigrationReport()
    for entry, data in found:
        path = (
            (archive / f"{file_stem(entry.number)}.pdf").absolute()
            if to is PdfStore.FILES
            else Path(entry.pdf_path or "")
        )
        if to is PdfStore.FILES and path.exists() and path.read_bytes() != data:
            raise LedgerError(
                f"{path} exists and is another file; nothing more was copied "
                f"({report.copied} done)",
                hint="choose an empty --archive folder",
            )
        target.put(entry.number, path, data)
        if to is PdfStore.FILES:
            entry.pdf_path = str(path)
        if hashlib.sha256(target.read(entry)).digest() != hashlib.sha256(data).digest():
            raise LedgerError(f"{target.where(entry)}: the copy differs from the source")
        report.copied += 1
        report.bytes += len(data)
        if to is PdfStore.FILES:
            report.paths[entry.number] = str(path)
        if progress is not None:
            progress(entry.number)
    if report.paths:
        repoint(ledger, report.paths)
    return report
