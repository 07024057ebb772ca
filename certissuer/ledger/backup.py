"""Backups that restore: the database, the signed PDFs it points to and a manifest of SHA-256 sums.

A backup is a folder::

    manifest.json     format, lab, when, the log's size and root, the newest checkpoint,
                      and every file below with its size and SHA-256
    ledger.sqlite     an SQLite ledger, copied with SQLite's online backup API, or
    ledger.sql        a PostgreSQL ledger, dumped by pg_dump (plain SQL)
    checkpoint.json   the newest checkpoint, as 'ledger checkpoint --out' writes it
    pdfs/             the signed PDF of every complete entry of the copy

Issuing may go on while `backup` runs: the database is copied as one consistent snapshot (SQLite:
one backup step under a read lock; PostgreSQL: pg_dump inside an exported snapshot), and the PDFs
are those of the entries complete in that snapshot (a PDF is stored before its entry completes).

`restore` checks every file against the manifest, refuses a database that is not empty and a
backup older than a checkpoint the lab published afterwards (unless forced), loads the database,
puts the PDFs back through the profile's store and runs the audit with the saved checkpoint as
witness before it says done.

>>> result = backup(ledger, Path("/media/usb/2026-12-04"), store=store)  # doctest: +SKIP
>>> restored = restore(Path("/media/usb/2026-12-04"), url, lab_code="T01", keys=keys,
...                    store_kind=PdfStore.FILES, archive=Path("out"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, func, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from certissuer import merkle
from certissuer._files import issued_length, write_atomic
from certissuer._vn import file_stem
from certissuer.config import PdfStore
from certissuer.errors import LedgerError
from certissuer.ledger.audit import AuditReport, Witness
from certissuer.ledger.ledger import Ledger
from certissuer.ledger.storage import (
    MissingPdf,
    PdfArchive,
    complete_entries,
    open_store,
    repoint,
)
from certissuer.ledger.tables import (
    CertificateEntry,
    Checkpoint,
    LedgerLab,
    LogLeaf,
    StoredPdf,
    utc,
)
from certissuer.token import TokenPublicKey

__all__ = [
    "BACKUP_FORMAT",
    "BackupResult",
    "RestoreResult",
    "backup",
    "check_backup",
    "restore",
]

_logger = logging.getLogger(__name__)

BACKUP_FORMAT = "certissuer-backup/1"
MANIFEST = "manifest.json"
_SQLITE_FILE = "ledger.sqlite"
_PG_FILE = "ledger.sql"
_CHECKPOINT_FILE = "checkpoint.json"


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What `backup` wrote."""

    folder: Path
    log_size: int
    root_hash: str
    entries: int
    pdfs: int
    bytes: int
    checkpoint_size: int | None
    problems: tuple[str, ...]
    """PDFs the archive lacked or that differ from the ledger (not in the backup)."""


@dataclass
class RestoreResult:
    """What `restore` did, and the audit it ran."""

    log_size: int = 0
    entries: int = 0
    pdfs: int = 0
    audit: AuditReport = field(default_factory=AuditReport)
    lost: list[str] = field(default_factory=list)
    """With `force`: what later checkpoints vouched for that the backup lacks."""
    without_pdf: list[str] = field(default_factory=list)
    """Complete certificates whose PDF the backup does not hold (the archive lacked it)."""


# -- backup --------------------------------------------------------------------------------


def backup(ledger: Ledger, out: Path, *, store: PdfArchive) -> BackupResult:
    """Write a backup of `ledger` and its PDFs (read through `store`) to the new folder `out`.

    `out` must not exist (or be an empty folder); the backup is written beside it and renamed
    into place when complete. PDFs missing from the archive or differing from the ledger are
    left out and named in `BackupResult.problems` (and the manifest). Raises `LedgerError` when
    the database cannot be copied (pg_dump missing or failing, a full disk).
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LedgerError(f"{out} already exists; a backup goes to a new folder")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "pdfs").mkdir(parents=True)
    try:
        result = _backup_into(ledger, partial, store)
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _fsync(out.parent)
    return replace(result, folder=out)


def _backup_into(ledger: Ledger, folder: Path, store: PdfArchive) -> BackupResult:
    if ledger.is_sqlite:
        database = _sqlite_copy(ledger, folder / _SQLITE_FILE)
        engine = create_engine(f"sqlite:///{folder / _SQLITE_FILE}")
        try:
            with Session(engine) as s:
                facts = _Snapshot.read(s)
        finally:
            engine.dispose()
        pdfs = _copy_pdfs(facts.entries, store, folder)
    else:
        database = _PG_FILE
        with ledger.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
                _pg_dump(ledger, str(snapshot), folder / _PG_FILE)
                with Session(bind=conn) as s:
                    facts = _Snapshot.read(s)
                pdfs = _copy_pdfs(facts.entries, store, folder, conn=conn)
    files = [database]
    if facts.checkpoint is not None:
        text = json.dumps(facts.checkpoint.to_json(), indent=2) + "\n"
        (folder / _CHECKPOINT_FILE).write_text(text, encoding="utf-8")
        files.append(_CHECKPOINT_FILE)
    listed = [_file_record(folder, name) for name in files]
    listed += [{**_file_record(folder, path), "number": number} for number, path in pdfs.copied]
    manifest = {
        "format": BACKUP_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lab_code": facts.lab_code,
        "database": "sqlite" if ledger.is_sqlite else "postgresql",
        "log_size": len(facts.hashes),
        "root_hash": merkle.tree_hash(facts.hashes).hex(),
        "entries": len(facts.entries),
        "pending": facts.pending,
        "checkpoint": None if facts.checkpoint is None else facts.checkpoint.to_json(),
        "files": listed,
        "problems": pdfs.problems,
    }
    for record in listed:
        _fsync(folder / record["path"])
    write_atomic(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return BackupResult(
        folder,
        manifest["log_size"],  # type: ignore[arg-type]
        manifest["root_hash"],  # type: ignore[arg-type]
        len(facts.entries),
        len(pdfs.copied),
        sum(int(r["size"]) for r in listed),
        None if facts.checkpoint is None else facts.checkpoint.tree_size,
        tuple(pdfs.problems),
    )


@dataclass
class _Snapshot:
    """What a backup records of the database copy it made."""

    lab_code: str | None
    pending: int
    """Entries whose number is taken and whose PDF is not signed yet (restored pending)."""
    entries: list[CertificateEntry]
    hashes: list[bytes]
    checkpoint: Checkpoint | None

    @classmethod
    def read(cls, s: Session) -> _Snapshot:
        lab = s.get(LedgerLab, 1)
        entries = list(
            s.exec(
                select(CertificateEntry)
                .where(col(CertificateEntry.pdf_sha256).is_not(None))
                .order_by(col(CertificateEntry.number))
            )
        )
        hashes = [
            bytes.fromhex(h) for h in s.exec(select(LogLeaf.leaf_hash).order_by(col(LogLeaf.idx)))
        ]
        checkpoint = s.exec(select(Checkpoint).order_by(col(Checkpoint.id).desc())).first()
        for row in (*entries, *([checkpoint] if checkpoint else [])):
            s.expunge(row)
        pending = s.exec(
            select(func.count())
            .select_from(CertificateEntry)
            .where(col(CertificateEntry.pdf_sha256).is_(None))
        ).one()
        return cls(lab.lab_code if lab else None, pending, entries, hashes, checkpoint)


def _sqlite_copy(ledger: Ledger, target: Path) -> str:
    """Copy the SQLite ledger to `target` as one consistent snapshot; return its file name."""
    database = ledger.engine.url.database
    if not database or database == ":memory:":
        raise LedgerError("an in-memory ledger cannot be backed up")
    try:
        source = sqlite3.connect(database, timeout=30)
        copy = sqlite3.connect(target)
        try:
            # pages=-1: the whole database in one step, under one read transaction, so the
            # copy is the database at one moment however many certificates are being issued.
            source.backup(copy, pages=-1)
            # One self-contained file (no -wal beside it), without PDFs kept in the database:
            # those are copied to pdfs/ as files, like any other store's.
            copy.execute("PRAGMA journal_mode=DELETE")
            has_pdfs = copy.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='ledger_pdf'"
            ).fetchone()
            if has_pdfs and copy.execute("SELECT 1 FROM ledger_pdf LIMIT 1").fetchone():
                copy.execute("DELETE FROM ledger_pdf")
                copy.commit()
                copy.execute("VACUUM")
            copy.commit()
        finally:
            copy.close()
            source.close()
    except sqlite3.Error as exc:
        raise LedgerError(f"cannot copy the ledger {database}: {exc}") from exc
    return _SQLITE_FILE


def _libpq_url(url: Any) -> str:
    """The SQLAlchemy URL `url` as libpq takes it (no driver name, no password)."""
    return str(
        url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    )


def _pg_env(url: Any) -> dict[str, str]:
    # The password goes to pg_dump and psql in their environment, never on a command line.
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return env


def _pg_dump(ledger: Ledger, snapshot: str, target: Path) -> None:
    url = ledger.engine.url
    command = [
        "pg_dump",
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        f"--snapshot={snapshot}",
        # PDFs kept in the database go to pdfs/ as files, like any other store's.
        f"--exclude-table-data={StoredPdf.__tablename__}",
        f"--file={target}",
        _libpq_url(url),
    ]
    _run(command, env=_pg_env(url), what="pg_dump")


def _run(command: list[str], *, env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise LedgerError(
            f"{what} was not found",
            hint="install the PostgreSQL client of the server's version (postgresql-client)",
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LedgerError(
            f"{what} failed (exit {done.returncode}): {detail[-1] if detail else 'no message'}",
            hint="its version must be the server's or newer",
        )


@dataclass
class _Copied:
    copied: list[tuple[str, str]] = field(default_factory=list)
    """(number, path in the backup)"""
    problems: list[str] = field(default_factory=list)


def _copy_pdfs(
    entries: Sequence[CertificateEntry],
    store: PdfArchive,
    folder: Path,
    *,
    conn: Connection | None = None,
) -> _Copied:
    out = _Copied()
    for entry in entries:
        try:
            data = (
                _read_snapshot_pdf(entry, conn)
                if conn is not None and _in_database(store)
                else store.read(entry)
            )
        except MissingPdf as exc:
            out.problems.append(f"{entry.number}: missing from the archive ({exc})")
            continue
        if issued_length(data, entry.pdf_sha256 or "") is None:
            out.problems.append(
                f"{entry.number}: {store.where(entry)} is not the PDF the ledger recorded"
            )
            continue
        name = f"pdfs/{file_stem(entry.number)}.pdf"
        (folder / name).write_bytes(data)
        out.copied.append((entry.number, name))
    return out


def _in_database(store: PdfArchive) -> bool:
    return store.kind is PdfStore.DATABASE


def _read_snapshot_pdf(entry: CertificateEntry, conn: Connection) -> bytes:
    # In the backup's own snapshot (PostgreSQL), so the PDFs are those of the dump.
    with Session(bind=conn) as s:
        row = s.get(StoredPdf, entry.number)
    if row is None:
        raise MissingPdf(f"the ledger database holds no PDF of {entry.number}")
    return bytes(row.data)


def _file_record(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"path": name, "size": size, "sha256": digest.hexdigest()}


def _fsync(path: Path) -> None:
    # A file's bytes, or a folder's entries, on disk before the backup says it is complete.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- restore -------------------------------------------------------------------------------


def check_backup(folder: Path) -> dict[str, Any]:
    """The manifest of the backup in `folder`, once every file it lists has its size and
    SHA-256; `LedgerError` names the first file that is missing, changed or unlisted."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read the backup's manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise LedgerError(f"{path}: the manifest is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise LedgerError(f"{path}: not a certissuer backup manifest (format {BACKUP_FORMAT})")
    listed: set[str] = set()
    for record in manifest.get("files") or []:
        name = str(record.get("path", ""))
        target = (folder / name).resolve()
        if not target.is_relative_to(folder.resolve()) or name in listed:
            raise LedgerError(f"{path}: file '{name}' is outside the backup or listed twice")
        listed.add(name)
        if not target.is_file():
            raise LedgerError(f"backup {folder}: {name} is missing")
        found = _file_record(folder, name)
        if found["size"] != record.get("size") or found["sha256"] != record.get("sha256"):
            raise LedgerError(
                f"backup {folder}: {name} does not match the manifest (expected SHA-256 "
                f"{record.get('sha256')}, {record.get('size')} bytes; found {found['sha256']}, "
                f"{found['size']} bytes); nothing was restored",
                hint="the backup was changed or damaged: restore from another one",
            )
    for extra in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = extra.relative_to(folder).as_posix()
        if name != MANIFEST and name not in listed:
            raise LedgerError(
                f"backup {folder}: {name} is not in the manifest; nothing was restored",
                hint="the backup was changed: restore from another one",
            )
    database = _SQLITE_FILE if manifest.get("database") == "sqlite" else _PG_FILE
    if database not in listed:
        raise LedgerError(f"backup {folder}: the manifest lists no {database}")
    return manifest


def restore(
    folder: Path,
    url: str,
    *,
    lab_code: str,
    keys: Sequence[TokenPublicKey],
    store_kind: PdfStore,
    archive: Path,
    witnesses: Sequence[Witness] = (),
    force: bool = False,
) -> RestoreResult:
    """Restore the backup in `folder` into the empty database at `url`, then audit it.

    Every file is checked against the manifest first (`check_backup`). The backup must be lab
    `lab_code`'s; the database at `url` must hold no table (a new SQLite file or an empty
    PostgreSQL database). A checkpoint in `witnesses` larger than the backup's log means the
    lab published events the backup lacks: refused unless `force`, and what would be lost is
    said either way. The PDFs go back through the store `store_kind`: as files under
    `archive` (each entry then records its new path) or into the database. The audit runs
    with the backup's saved checkpoint and the other `witnesses` (`keys`: the lab's ledger
    public keys); problems found raise `LedgerError` (the database is restored, not to be
    trusted). Returns what was restored and the audit.
    """
    manifest = check_backup(folder)
    result = RestoreResult()
    if manifest.get("lab_code") not in (None, lab_code):
        raise LedgerError(
            f"backup {folder} is lab {manifest['lab_code']}'s ledger, not lab {lab_code}'s"
        )
    size = int(manifest["log_size"])
    later = [w for w in witnesses if w.checkpoint.tree_size > size]
    for w in later:
        result.lost.append(
            f"the checkpoint of {utc(w.checkpoint.at):%Y-%m-%d %H:%M} UTC ({w.source}) vouches "
            f"for {w.checkpoint.tree_size} log leaves, the backup holds {size}: "
            f"{w.checkpoint.tree_size - size} event(s) after the backup would be lost"
        )
    if result.lost and not force:
        raise LedgerError(
            "restoring would go back in time: " + "; ".join(result.lost),
            hint="restore a newer backup; --force restores this one anyway (those events are "
            "lost, and the published checkpoint no longer matches the ledger)",
        )
    _require_empty(url)
    database = manifest["database"]
    if (database == "sqlite") != url.startswith("sqlite"):
        raise LedgerError(
            f"backup {folder} is of a {database} ledger; [ledger] url names another kind"
        )
    if database == "sqlite":
        _sqlite_restore(folder / _SQLITE_FILE, url)
    else:
        _psql_restore(folder / _PG_FILE, url)
    ledger = Ledger.open(url, create=True)  # a backup of an older version is upgraded
    try:
        if (
            ledger.log_size() != size
            or merkle.tree_hash(ledger.leaf_hashes()).hex() != (manifest["root_hash"])
        ):
            raise LedgerError(
                f"the restored log differs from the manifest (size {ledger.log_size()}, "
                f"expected {size})"
            )
        store = open_store(ledger, store_kind)
        paths: dict[str, str] = {}
        for record in manifest["files"]:
            number = record.get("number")
            if number is None:
                continue
            data = (folder / record["path"]).read_bytes()
            target = (archive / Path(record["path"]).name).absolute()
            if store_kind is PdfStore.FILES and target.exists() and target.read_bytes() != data:
                raise LedgerError(
                    f"{target} exists and is another file; the database is restored, its "
                    "PDFs are not",
                    hint="restore into an empty --archive folder",
                )
            store.put(number, target, data)
            paths[number] = str(target)
            result.pdfs += 1
        if store_kind is PdfStore.FILES:
            repoint(ledger, paths)
        saved: list[Witness] = []
        if (folder / _CHECKPOINT_FILE).is_file():
            data = json.loads((folder / _CHECKPOINT_FILE).read_text(encoding="utf-8"))
            cp = Checkpoint.from_json(data, origin=f"{folder / _CHECKPOINT_FILE}")
            saved.append(Witness(str(folder / _CHECKPOINT_FILE), cp))
        kept = [w for w in witnesses if w.checkpoint.tree_size <= size]
        result.audit = ledger.audit(keys=keys, witnesses=[*saved, *kept], store=store)
        result.log_size, result.entries = result.audit.log_size, result.audit.entries
        result.without_pdf = [e.number for e in complete_entries(ledger) if e.number not in paths]
    finally:
        ledger.close()
    if not result.audit.ok:
        raise LedgerError(
            f"the ledger is restored, but its audit found {len(result.audit.problems)} "
            f"problem(s): {'; '.join(result.audit.problems[:3])}",
            hint="do not issue from it; run 'certissuer ledger audit' for the whole list",
        )
    return result


def _require_empty(url: str) -> None:
    """Refuse a database that holds any table (a restore never merges into a ledger)."""
    where = make_url(url).render_as_string(hide_password=True)
    if url.startswith("sqlite"):
        database = make_url(url).database or ""
        if database in ("", ":memory:"):
            raise LedgerError("restore needs a ledger file, not an in-memory database")
        path = Path(database)
        if not path.exists() or path.stat().st_size == 0:
            return
        where = str(path.resolve())
    engine = create_engine(url)
    try:
        tables = inspect(engine).get_table_names()
        entries = 0
        if CertificateEntry.__tablename__ in tables:
            with engine.connect() as conn:
                entries = conn.exec_driver_sql("SELECT count(*) FROM certificate").scalar_one()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot open the database at {where}: {exc}") from exc
    finally:
        engine.dispose()
    if tables:
        raise LedgerError(
            f"the database at {where} is not empty ({len(tables)} tables, {entries} "
            "certificates); a restore goes into an empty database only",
            hint="create a new database (PostgreSQL: createdb) or name a new SQLite file in "
            "[ledger] url",
        )


def _sqlite_restore(source: Path, url: str) -> None:
    target = Path(make_url(url).database or "")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        restored = sqlite3.connect(target)
        try:
            backup_db.backup(restored)
            restored.execute("PRAGMA journal_mode=WAL")
            restored.commit()
        finally:
            restored.close()
            backup_db.close()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise LedgerError(f"cannot restore {source} into {target}: {exc}") from exc


def _psql_restore(source: Path, url: str) -> None:
    parsed = make_url(url)
    command = [
        "psql",
        "--no-psqlrc",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        "--single-transaction",
        f"--file={source}",
        _libpq_url(parsed),
    ]
    _run(command, env=_pg_env(parsed), what="psql")
