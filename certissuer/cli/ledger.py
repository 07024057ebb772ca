"""``certissuer ledger``: look at, search, export, prove and audit what the ledger holds.

A ledger entry prints in one JSON shape everywhere (``ledger list --json``, ``ledger search
--json``, ``ledger export --format json``): `certissuer.report.export.entry_row`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from certissuer._files import write_atomic
from certissuer._vn import VIETNAM_TZ, local_date, local_time
from certissuer.cli._app import app
from certissuer.cli._state import State, issuer, open_ledger, out, print_table, say, token_key
from certissuer.errors import ConfigError, LedgerError

if TYPE_CHECKING:
    from certissuer.config import Settings
    from certissuer.ledger import CertificateEntry, Ledger, Status
    from certissuer.ledger.storage import PdfArchive

__all__ = [
    "ledger_app",
    "ledger_audit",
    "ledger_backup",
    "ledger_checkpoint",
    "ledger_consistency",
    "ledger_export",
    "ledger_failures",
    "ledger_get",
    "ledger_list",
    "ledger_migrate_files",
    "ledger_proof",
    "ledger_repair",
    "ledger_reports",
    "ledger_restore",
    "ledger_search",
    "ledger_show",
    "ledger_upgrade",
    "print_entries_json",
]

ledger_app = typer.Typer(help="Look at what the ledger holds.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


def _ledger(settings: Settings) -> Ledger:
    """The lab's ledger (``[ledger] url``), as it is: its schema must be current.

    Every command here reads or signs what is there; only ``certissuer ledger upgrade``
    changes the schema, and issuing creates the database. Another lab's ledger is refused.
    """
    return open_ledger(settings)


def _store(ledger: Ledger, settings: Settings) -> PdfArchive:
    """Where the lab's signed PDFs are (``[ledger] pdf_store``)."""
    from certissuer.ledger.storage import open_store

    return open_store(ledger, settings.ledger_pdf_store)


def _print_entries(rows: Sequence[tuple[CertificateEntry, Status]]) -> None:
    """One table row per (entry, status): number, kind, status, issue date, instrument."""
    print_table(
        ("number", "kind", "status", "issued", "instrument", "serial", "customer"),
        (
            (
                e.number,
                e.kind,
                s.value,
                e.issue_date.isoformat(),
                e.instrument_name,
                e.instrument_serial,
                e.customer_name,
            )
            for e, s in rows
        ),
        keep=("number", "kind", "status", "issued", "serial"),
    )


def print_entries_json(rows: Sequence[tuple[CertificateEntry, Status]]) -> None:
    """Print `rows` as a JSON list in the one shape of a ledger entry (`entry_row`)."""
    from certissuer.report.export import entry_row

    typer.echo(json.dumps([entry_row(e, s) for e, s in rows], ensure_ascii=False, indent=2))


@ledger_app.command("list")
def ledger_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="verification or calibration")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List issued certificates, newest first."""
    ledger = _ledger(ctx.obj.settings())
    today = datetime.now(VIETNAM_TZ).date()
    rows = [(e, ledger.status(e, today=today)[0]) for e in ledger.entries(kind=kind, limit=limit)]
    if as_json:
        print_entries_json(rows)
        return
    _print_entries(rows)


@ledger_app.command("failures")
def ledger_failures(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List failed verifications, oldest first: each notice of failure issued (with the
    instrument's earlier certificate it made no longer valid) and each failure only recorded.

    With --json, a notice prints as a ledger entry does (`entry_row`) plus ``earlier``; a
    recorded failure without a notice has ``number`` null and its ``ref``, ``serial``,
    ``recorded_at`` and the instrument and owner from its recorded data.
    """
    from certissuer.report.export import entry_row

    settings = ctx.obj.settings()
    ledger = _ledger(settings)
    today = datetime.now(VIETNAM_TZ).date()
    rows: list[dict[str, Any]] = []
    for f in ledger.failures(settings.lab_code):
        if f.notice is not None:
            row = entry_row(f.notice, ledger.status(f.notice, today=today)[0])
            row["earlier"] = f.earlier
        else:
            assert f.recorded is not None
            data = json.loads(f.recorded.data_json)
            ins = data.get("instrument") or {}
            row = {
                "number": None,
                "kind": "failure",
                "status": "recorded",
                "lab_code": f.recorded.lab_code,
                "ref": f.recorded.ref,
                "instrument_name": ins.get("name", ""),
                "instrument_model": ins.get("model", ""),
                "instrument_serial": f.recorded.instrument_serial,
                "customer_name": (data.get("owner") or {}).get("name", ""),
                "work_date": data.get("verification_date"),
                "recorded_at": f.at.isoformat(),
                "earlier": None,
            }
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    lines = []
    for r in rows:
        number = r["number"] or f"(recorded, ref {r['ref']})"
        when = r.get("issue_date") or str(local_date(datetime.fromisoformat(r["recorded_at"])))
        lines.append((number, when, r["earlier"] or "—", r["instrument_name"],
                      r["instrument_serial"], r["customer_name"]))  # fmt: skip
    print_table(
        ("number", "date", "earlier", "instrument", "serial", "owner"),
        lines,
        keep=("number", "date", "earlier", "serial"),
    )


@ledger_app.command("reports")
def ledger_reports(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the signed reports recorded in the ledger (annual, activity), newest first.

    Each with its period, issue time (UTC+7), signer, the checkpoint it counts, the PDF's
    SHA-256 and whether the record's signature checks with the lab's token key ("signed";
    otherwise why not: such a row does not count when a report is verified).
    """
    from certissuer.ledger import report_record_problem, utc
    from certissuer.token import lab_public_keys

    settings = ctx.obj.settings()
    ledger = _ledger(settings)
    keys = lab_public_keys(settings.token_key) if settings.token_key else []
    records = [(r, report_record_problem(r, keys) or "signed") for r in ledger.reports()]
    if as_json:
        rows = [
            {
                "id": r.id,
                "kind": r.kind,
                "period": r.period,
                "title": r.title,
                "issued_at": utc(r.issued_at).isoformat(),
                "signer": r.signer,
                "tree_size": r.tree_size,
                "root_hash": r.root_hash,
                "pdf_sha256": r.pdf_sha256,
                "pdf_path": r.pdf_path,
                "record": status,
            }
            for r, status in records
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    lines = [
        (
            r.kind,
            r.period,
            _local(r.issued_at),
            r.signer,
            f"{r.tree_size} {r.root_hash[:16]}…",
            r.pdf_sha256,
            status,
        )
        for r, status in records
    ]
    print_table(
        ("kind", "period", "issued", "signer", "checkpoint", "sha256", "record"),
        lines,
        keep=("period", "issued", "sha256"),
    )


@ledger_app.command("show")
def ledger_show(
    ctx: typer.Context,
    number: Annotated[
        str,
        typer.Argument(
            help="Certificate number, e.g. HC-2026-000001 (KD- for KĐ-, lower case and the "
            "PDF's file name work too)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one certificate's ledger entry, data and events.

    Times print on Vietnam's clock (UTC+7); with --json, as ISO 8601 with their offset."""
    from certissuer.key_register import lab_token_keys
    from certissuer.ledger import event_problem, utc
    from certissuer.report.export import entry_row

    state: State = ctx.obj
    settings = state.settings()
    ledger = _ledger(settings)
    entry = ledger.get(number)
    if entry is None:
        raise LedgerError(
            f"certificate {number} is not in the ledger",
            hint="'certissuer ledger list' shows what is",
        )
    # The key in use and the older ones of the key register: events signed before a rotation.
    keys = lab_token_keys(settings)[0] if settings.token_key else []
    today = datetime.now(VIETNAM_TZ).date()
    # With the lab's keys, the status its signed events give (what inspectors are told).
    if keys:
        standing = ledger.standing(entry, keys=keys, today=today)
        status, decided = standing.status, standing.event
    else:
        status, decided = ledger.status(entry, today=today)
    events = ledger.events(entry.number)
    record = entry.model_dump(mode="json", exclude={"data_json"})
    record.update(entry_row(entry, status, decided))
    record["status"] = status.value
    record["data"] = entry.data()
    record["events"] = []
    for ev in events:
        problem = event_problem(ev, entry, keys) if keys else "no token key configured to check"
        record["events"].append(
            {
                "kind": ev.kind,
                "at": utc(ev.at).isoformat(),
                "reason": ev.reason,
                "related_number": ev.related_number,
                "signature": (
                    f"IGNORED: {problem}"
                    if problem
                    else "signed"
                    if ev.backfilled_at is None
                    else f"signed at upgrade {local_date(ev.backfilled_at)}"
                ),
            }
        )
    if as_json:
        typer.echo(json.dumps(record, ensure_ascii=False, indent=2))
        return
    from certissuer.report.export import COLUMNS

    for key in (*COLUMNS, *(["paper_number"] if record.get("paper_number") else [])):
        value = record[key]
        if value is None and key in ("status_since", "status_reason", "status_by", "replaces"):
            continue
        if key in _TIMES and value:
            value = _local(datetime.fromisoformat(value))
        say(f"{key:18} {value}")
    for path, value in _flat(record["data"], "data"):
        say(f"{path:18} {value}")
    for ev in record["events"]:
        say(
            f"event              {ev['kind']} at {_local(datetime.fromisoformat(ev['at']))} "
            f"{ev['reason']}".rstrip()
            + f" [{ev['signature']}]"
        )


def _flat(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """`value` (the certificate's data) as (dotted path, text) lines, lists numbered from 1:
    ``data.instrument.serial``, ``data.results[3].measured``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield path, "(none)"
        for i, item in enumerate(value, 1):
            yield from _flat(item, f"{path}[{i}]")
    elif value is not None and value != "":
        yield path, str(value)


@ledger_app.command("get")
def ledger_get(
    ctx: typer.Context,
    number: Annotated[
        str, typer.Argument(help="Certificate number (KD- for KĐ-, lower case, file name).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the copy to.")],
) -> None:
    """Write a copy of a certificate's signed PDF, byte for byte as the archive holds it.

    The copy is checked against the SHA-256 the ledger recorded at issue (an approved
    certificate is that file plus the head's signature); a file missing from the archive or
    changed since is an error, and nothing is written."""
    from certissuer._files import issued_length
    from certissuer.issue import pdf_filename

    ledger = _ledger(ctx.obj.settings())
    entry = ledger.get(number)
    if entry is None:
        raise LedgerError(
            f"certificate {number} is not in the ledger",
            hint="'certissuer ledger search' finds a number by serial or owner",
        )
    if entry.is_pending or not entry.pdf_path or not entry.pdf_sha256:
        raise LedgerError(f"certificate {entry.number} has no signed PDF yet (still pending)")
    store = _store(ledger, ctx.obj.settings())
    try:
        data = store.read(entry)
    except LedgerError as exc:
        raise LedgerError(
            f"the archive lacks the PDF of {entry.number}: {exc}",
            hint="restore it from a backup; the ledger keeps its SHA-256 "
            f"({entry.pdf_sha256}) to check the restored file",
        ) from None
    issued = issued_length(data, entry.pdf_sha256)
    if issued is None:
        raise LedgerError(
            f"the archived PDF of {entry.number} ({store.where(entry)}) is not the file the "
            f"ledger recorded (SHA-256 {entry.pdf_sha256}); nothing was written",
            hint="run 'certissuer ledger audit' and restore the file from a backup",
        )
    target = out_dir / pdf_filename(entry.number)
    if store.kind == "files" and target.resolve() == Path(entry.pdf_path).resolve():
        raise ConfigError(f"{target} is the archived file itself; choose another --out folder")
    write_atomic(target, data)
    later = "" if issued == len(data) else f" (with {len(data) - issued} bytes of later signatures)"
    say(f"wrote {target}: {entry.number}, SHA-256 {hashlib.sha256(data).hexdigest()}{later}")


_TIMES = frozenset({"issued_at", "claimed_at", "status_since"})
"""The entry's columns that are moments (UTC in the ledger), printed on Vietnam's clock."""


def _local(moment: datetime) -> str:
    """`moment` as a person reads it: Vietnam's date and time, with the offset said."""
    return f"{local_time(moment):%Y-%m-%d %H:%M:%S} (UTC+7)"


@ledger_app.command("upgrade")
def ledger_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the ledger's schema to this version (keeps every row).

    With the lab's token key configured, events written before events were signed are then
    signed with it, marked "signed at upgrade", where a checkpoint the lab signed vouches for
    them. A ledger made before it recorded its lab becomes this lab's."""
    state: State = ctx.obj
    settings = state.settings()
    ledger = _ledger(settings)
    revision = ledger.upgrade()
    ledger.bind(settings.lab_code, settings.source)  # an older ledger adopts this lab
    signed, left = (
        ledger.sign_unsigned(token_key(state), at=datetime.now(UTC))
        if settings.token_key is not None
        else ([], [])
    )
    say(f"ledger schema at revision {revision}")
    if signed:
        say(f"signed {len(signed)} earlier event(s) with the lab's key (signed at upgrade)")
    for ev, why in left:
        out.print(
            "[yellow]"
            + escape(f"left unsigned: event row {ev.id} ({ev.number}, {ev.kind}): {why}")
            + "[/]",
            soft_wrap=True,
        )
    if left:
        say(
            "hint: 'certissuer ledger audit' shows what differs; verification ignores "
            "unsigned events"
        )


@ledger_app.command("repair")
def ledger_repair(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder of the runs.")] = Path(
        "out"
    ),
) -> None:
    """Complete certificates left pending by a crash (no gap, nothing issued twice)."""
    repairer = issuer(ctx.obj, out_dir)
    done = repairer.complete_pending()
    left = repairer.ledger.pending(repairer.settings.lab_code)
    for d in done:
        say(f"completed {d.number}  {d.path}")
    say(f"{len(done)} completed, {len(left)} still pending (claimed by a running process)")


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    ctx: typer.Context,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the signed checkpoint (JSON) here, to keep outside the database "
            "for 'ledger audit --witness'.",
        ),
    ] = None,
) -> None:
    """Sign a checkpoint (tree size and root) of the ledger's log with the lab's key."""
    state: State = ctx.obj
    settings = state.settings()
    ledger = _ledger(settings)
    cp = ledger.checkpoint(token_key(state), lab_code=settings.lab_code, at=datetime.now(UTC))
    if out_file is not None:
        text = json.dumps(cp.to_json(), indent=2) + "\n"
        write_atomic(out_file, text.encode())
    say(f"checkpoint {cp.id}: size {cp.tree_size}, root {cp.root_hash}")
    if out_file is not None:
        say(f"wrote {out_file}")


@ledger_app.command("proof")
def ledger_proof(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Certificate number.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the proof here.")
    ] = None,
) -> None:
    """Export the inclusion proof of a certificate's events in the newest checkpoint (JSON)."""
    ledger = _ledger(ctx.obj.settings())
    text = json.dumps(ledger.inclusion(number), ensure_ascii=False, indent=2)
    if out_file is None:
        typer.echo(text)
    else:
        out_file.write_text(text, encoding="utf-8")
        say(f"wrote {out_file}")


@ledger_app.command("consistency")
def ledger_consistency(
    ctx: typer.Context,
    first: Annotated[int, typer.Argument(help="The older tree size.")],
    second: Annotated[int | None, typer.Argument(help="The newer size (newest checkpoint).")] = (
        None
    ),
) -> None:
    """Print the consistency proof between two tree sizes of the log (JSON)."""
    ledger = _ledger(ctx.obj.settings())
    typer.echo(json.dumps(ledger.consistency(first, second), indent=2))


@ledger_app.command("audit")
def ledger_audit(
    ctx: typer.Context,
    files: Annotated[bool, typer.Option(help="Also hash every PDF the ledger points to.")] = True,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A checkpoint kept outside the database: a file from 'ledger checkpoint "
            "--out', or a certissuer server's URL (its /api/v1/checkpoint). Repeatable.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute the log, check event signatures, checkpoints and PDFs; name any edited,
    deleted, inserted, reordered or forged row and any rollback behind a saved checkpoint.
    Exit 0 only when nothing is found (leaves no checkpoint covers yet are warnings)."""
    from dataclasses import asdict

    from certissuer.key_register import lab_token_keys
    from certissuer.ledger import load_witness

    state: State = ctx.obj
    settings = state.settings()
    if settings.token_key is None:
        raise ConfigError("no token key configured", hint="set [token] key")
    witnesses = [load_witness(source) for source in witness or []]
    ledger = _ledger(settings)
    report = ledger.audit(
        keys=lab_token_keys(settings)[0],
        check_files=files,
        witnesses=witnesses,
        store=_store(ledger, settings),
    )
    if as_json:
        typer.echo(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    else:
        say(
            f"log: {report.log_size} leaves, {report.entries} certificates, "
            f"{report.events_signed} signed events ({report.events_signed_at_upgrade} signed "
            f"at upgrade), {report.checkpoints_checked} checkpoints, "
            f"{report.witnesses_checked} saved checkpoints, {report.files_checked} PDFs "
            f"checked ({report.files_missing} not found)"
        )
        for problem in report.problems:
            out.print(f"[red]{escape(problem)}[/]", soft_wrap=True)
        for warning in report.unvouched:
            out.print(f"[yellow]warning: {escape(warning)}[/]", soft_wrap=True)
        if report.unvouched:
            say(
                "hint: run 'certissuer ledger checkpoint --out FILE' so a checkpoint vouches "
                "for them, and keep the file outside the database"
            )
        out.print(
            "[green]audit: no problems found[/]"
            if report.ok
            else f"[red]audit: {len(report.problems)} problem(s)[/]"
        )
    raise typer.Exit(code=0 if report.ok else 1)


def _search(
    state: State,
    number: str | None,
    paper_number: str | None,
    serial: str | None,
    customer: str | None,
    kind: str | None,
    issued_from: str | None,
    issued_to: str | None,
    status: str | None,
    limit: int,
) -> list[Any]:
    from certissuer.ledger import Status

    def day(value: str | None, name: str) -> date | None:
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"--{name}: expected a date YYYY-MM-DD, got {value!r}") from None

    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise ConfigError(
            f"--status: expected one of {', '.join(s.value for s in Status)}, got {status!r}"
        ) from None
    return _ledger(state.settings()).search(
        number=number,
        paper_number=paper_number,
        serial=serial,
        customer=customer,
        kind=kind,
        issued_from=day(issued_from, "from"),
        issued_to=day(issued_to, "to"),
        status=wanted,
        today=datetime.now(VIETNAM_TZ).date(),
        limit=limit,
    )


_NumberOpt = Annotated[str | None, typer.Option(help="Number contains this.")]
_PaperOpt = Annotated[str | None, typer.Option(help="Paper number (of a digitised copy).")]
_SerialOpt = Annotated[str | None, typer.Option(help="Instrument serial contains this.")]
_CustomerOpt = Annotated[str | None, typer.Option(help="Owner/customer contains this.")]
_KindOpt = Annotated[str | None, typer.Option(help="verification or calibration")]
_FromOpt = Annotated[str | None, typer.Option("--from", help="Issued on or after (YYYY-MM-DD).")]
_ToOpt = Annotated[str | None, typer.Option("--to", help="Issued on or before (YYYY-MM-DD).")]
_StatusOpt = Annotated[str | None, typer.Option(help="valid, revoked, superseded, expired, ...")]


@ledger_app.command("search")
def ledger_search(
    ctx: typer.Context,
    number: _NumberOpt = None,
    paper_number: _PaperOpt = None,
    serial: _SerialOpt = None,
    customer: _CustomerOpt = None,
    kind: _KindOpt = None,
    issued_from: _FromOpt = None,
    issued_to: _ToOpt = None,
    status: _StatusOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find certificates by number, serial, owner, kind, issue dates and status."""
    rows = _search(
        ctx.obj, number, paper_number, serial, customer, kind, issued_from, issued_to, status,
        limit,
    )  # fmt: skip
    if as_json:
        print_entries_json(rows)
        return
    _print_entries(rows)
    say(f"{len(rows)} found")


@ledger_app.command("export")
def ledger_export(
    ctx: typer.Context,
    out_file: Annotated[Path, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or json")] = "csv",
    number: _NumberOpt = None,
    paper_number: _PaperOpt = None,
    serial: _SerialOpt = None,
    customer: _CustomerOpt = None,
    kind: _KindOpt = None,
    issued_from: _FromOpt = None,
    issued_to: _ToOpt = None,
    status: _StatusOpt = None,
) -> None:
    """Export certificates (all, or those matching the filters) to CSV, XLSX or JSON."""
    from certissuer.report.export import ExportFormat, export_entries

    try:
        form = ExportFormat(fmt)
    except ValueError:
        raise ConfigError(f"--format: expected csv, xlsx or json, got {fmt!r}") from None
    rows = _search(
        ctx.obj, number, paper_number, serial, customer, kind, issued_from, issued_to, status,
        10**9,
    )  # fmt: skip
    ledger = _ledger(ctx.obj.settings())
    today = datetime.now(VIETNAM_TZ).date()
    # Each row with the event that decided its status: when, why and by what it ended.
    count = export_entries(((e, *ledger.status(e, today=today)) for e, _ in rows), form, out_file)
    say(f"exported {count} certificates to {out_file}")


@ledger_app.command("backup")
def ledger_backup(
    ctx: typer.Context,
    out_dir: Annotated[Path, typer.Argument(help="A new folder to write the backup to.")],
) -> None:
    """Back up the ledger and its signed PDFs to a new folder, with a manifest of SHA-256 sums.

    Issuing may go on meanwhile: the database is copied as one snapshot (SQLite's backup API;
    pg_dump for PostgreSQL) and the PDFs are those of the entries complete in it."""
    from certissuer.ledger.backup import backup

    settings = ctx.obj.settings()
    ledger = _ledger(settings)
    result = backup(ledger, out_dir, store=_store(ledger, settings))
    for problem in result.problems:
        out.print(f"[yellow]warning: {escape(problem)}[/]", soft_wrap=True)
    cp = "none" if result.checkpoint_size is None else f"size {result.checkpoint_size}"
    say(
        f"backup {result.folder}: {result.entries} certificates, {result.pdfs} PDFs, log size "
        f"{result.log_size}, root {result.root_hash}, newest checkpoint {cp}, "
        f"{result.bytes} bytes"
    )
    if result.problems:
        say(f"{len(result.problems)} PDF(s) not backed up: run 'certissuer ledger audit'")
        raise typer.Exit(code=1)


@ledger_app.command("restore")
def ledger_restore(
    ctx: typer.Context,
    in_dir: Annotated[Path, typer.Argument(help="The backup folder ('ledger backup').")],
    archive: Annotated[
        Path,
        typer.Option(
            "--archive",
            help="Folder to put the PDFs back in (pdf_store = files); each entry is pointed "
            "at its restored file.",
        ),
    ] = Path("out"),
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A checkpoint published after the backup (file or server URL, as 'ledger "
            "audit' takes): a backup behind it is refused. Repeatable.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Restore even a backup behind a --witness.")
    ] = False,
) -> None:
    """Restore a backup into an empty ledger database ([ledger] url), then audit it.

    Every file is checked against the manifest first; a changed backup or a database that is
    not empty is refused. The audit uses the backup's saved checkpoint as witness."""
    from certissuer.key_register import lab_token_keys
    from certissuer.ledger import load_witness
    from certissuer.ledger.backup import restore

    settings = ctx.obj.settings()
    if settings.token_key is None:
        raise ConfigError("no token key configured", hint="set [token] key")
    witnesses = [load_witness(source) for source in witness or []]
    result = restore(
        in_dir,
        settings.ledger_url,
        lab_code=settings.lab_code,
        keys=lab_token_keys(settings)[0],  # older keys too: a backup made after a rotation
        store_kind=settings.ledger_pdf_store,
        archive=archive,
        witnesses=witnesses,
        force=force,
    )
    for lost in result.lost:
        out.print(f"[yellow]warning: forced: {escape(lost)}[/]", soft_wrap=True)
    report = result.audit
    say(
        f"restored {result.entries} certificates, {result.pdfs} PDFs, log size "
        f"{result.log_size}; audit: {report.events_signed} signed events, "
        f"{report.checkpoints_checked} checkpoints, {report.witnesses_checked} saved "
        f"checkpoints, {report.files_checked} PDFs checked ({report.files_missing} not found)"
    )
    for warning in report.unvouched:
        out.print(f"[yellow]warning: {escape(warning)}[/]", soft_wrap=True)
    for number in result.without_pdf:
        out.print(f"[yellow]warning: the backup holds no PDF of {escape(number)}[/]")
    if result.without_pdf:
        say(
            f"restore done, audit clean, but {len(result.without_pdf)} certificate(s) have no "
            "PDF: reissue them or restore their files from an older backup"
        )
        raise typer.Exit(code=1)
    out.print("[green]restore done: audit found no problems[/]")


@ledger_app.command("migrate-files")
def ledger_migrate_files(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="files or database")],
    archive: Annotated[
        Path, typer.Option("--archive", help="With --to files: the folder to write them to.")
    ] = Path("out"),
) -> None:
    """Copy every signed PDF into the other store, checking every hash; then set
    [ledger] pdf_store to match. The source is left in place."""
    from certissuer.config import PdfStore
    from certissuer.ledger.storage import migrate_files

    target = PdfStore.parse(to, where="--to")
    settings = ctx.obj.settings()
    ledger = _ledger(settings)
    report = migrate_files(ledger, to=target, archive=archive)
    where = f"files under {archive}" if target is PdfStore.FILES else "the ledger database"
    say(f"copied {report.copied} PDFs ({report.bytes} bytes) to {where}, every hash checked")
    if settings.ledger_pdf_store != target:
        say(f'now set [ledger] pdf_store = "{target.value}" in the lab profile')
