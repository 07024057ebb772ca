"""``certissuer hub search|recall|export|lab-profile``: the province's catalogue on the hub."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from certissuer._vn import VIETNAM_TZ
from certissuer.cli._state import print_table, say, warn
from certissuer.cli.hub import DbOption, hub_app, open_hub
from certissuer.errors import InputError

if TYPE_CHECKING:
    pass

__all__: list[str] = []

TodayOption = Annotated[
    str | None, typer.Option("--today", help="Count from this date (YYYY-MM-DD).")
]


def _day(today: str | None) -> date:
    if not today:
        return datetime.now(VIETNAM_TZ).date()
    try:
        return date.fromisoformat(today)
    except ValueError:
        raise InputError("--today", f"expected a date YYYY-MM-DD, got '{today}'") from None


@hub_app.command("search")
def search(
    lab: Annotated[str | None, typer.Option(help="One lab's code.")] = None,
    serial: Annotated[str | None, typer.Option(help="Serial, or part of it.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner or customer (marks folded).")] = None,
    place: Annotated[str | None, typer.Option(help="Place of use or address (folded).")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Certificate kind, or an instrument's type code.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="valid, expired, revoked or superseded.")
    ] = None,
    record: Annotated[
        list[str] | None,
        typer.Option(
            "--record",
            help="certificates, instruments, standards, inspectors (repeat; default: the "
            "first two).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many results (one page; up to 500).")
    ] = 200,
    after: Annotated[
        str | None,
        typer.Option("--after", help="The next page: the cursor the previous page printed."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    today: TodayOption = None,
    db: DbOption = None,
) -> None:
    """Search every lab's certificates and register rows at the hub (marks folded), one page
    at a time: the next page's cursor is printed (to standard error with --json)."""
    from certissuer.hub.catalogue import (
        MAX_PAGE_SIZE,
        RECORD_KINDS,
        Catalogue,
        CatalogueQuery,
        PageMark,
        Status,
    )

    records = tuple(record or ("certificates", "instruments"))
    for r in records:
        if r not in RECORD_KINDS:
            raise InputError("--record", f"expected one of {', '.join(RECORD_KINDS)}, got '{r}'")
    try:
        wanted = Status(status) if status else None
    except ValueError:
        raise InputError(
            "--status", f"expected one of {', '.join(Status)}, got '{status}'"
        ) from None
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InputError("--limit", f"expected 1 to {MAX_PAGE_SIZE}, got {limit}")
    start = PageMark.parse(after, where="--after") if after is not None else None
    hub = open_hub(db)
    try:
        page = Catalogue(hub).page(
            CatalogueQuery(records, lab, serial, owner, place, kind, wanted, limit, after=start),
            today=_day(today),
        )
    finally:
        hub.close()
    hits = page.hits
    more = f"next page: --after {page.next.text}" if page.next else None
    if as_json:
        say(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=1))
        if more:
            warn(f"{len(hits)} of {page.total} found; {more}")
        return
    rows = []
    for h in hits:
        d = h.data
        serial_ = d.get("instrument_serial") or d.get("serial") or ""
        who = d.get("customer_name") or d.get("owner_name") or d.get("name") or ""
        what = d.get("instrument_name") or d.get("name") or ""
        until = d.get("valid_until") or d.get("calibration_due") or d.get("card_expiry") or ""
        rows.append((h.lab_code, h.record[:-1], h.key, what, serial_, who, until, h.status or ""))
    print_table(
        ("lab", "record", "key", "name", "serial", "owner", "valid until", "status"),
        rows,
        keep=("lab", "key", "serial", "valid until"),
    )
    say(f"{len(hits)} of {page.total} found" if more or start else f"{len(hits)} found")
    if more:
        say(more)


@hub_app.command("recall")
def recall(
    within: Annotated[str, typer.Option(help="Window: 30d, 6w, 3m.")] = "30d",
    place: Annotated[str | None, typer.Option(help="Only at this place (marks folded).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    today: TodayOption = None,
    db: DbOption = None,
) -> None:
    """Instruments whose newest certificate from any lab has lapsed or lapses in the window."""
    from certissuer.hub.catalogue import Catalogue
    from certissuer.registry import parse_window

    day = _day(today)
    days = parse_window(within, day)
    hub = open_hub(db)
    try:
        found = Catalogue(hub).recall(today=day, within_days=days, place=place)
    finally:
        hub.close()
    if as_json:
        say(json.dumps([r.to_dict() for r in found], ensure_ascii=False, indent=1))
        return
    print_table(
        ("serial", "instrument", "owner", "place", "lab", "certificate", "valid until", "state"),
        [
            (
                r.serial,
                r.instrument_name,
                r.owner,
                r.place,
                r.lab_code,
                r.number,
                r.valid_until or "",
                r.state,
            )
            for r in found
        ],
        title=f"lapsed, revoked or lapsing by {day + timedelta(days=days)}",
        keep=("serial", "certificate", "valid until"),
    )
    say(f"{len(found)} instruments")


@hub_app.command("export")
def export(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The file to write (a folder for --format csv)."),
    ],
    since_cursor: Annotated[
        str | None,
        typer.Option("--since-cursor", help="The cursor printed by the previous export."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="json (the sector format, version 1.1), xlsx (a sheet per record type) or "
            "csv (a folder with a file per record type).",
        ),
    ] = "json",
    db: DbOption = None,
) -> None:
    """Write the hub's records changed since the cursor as a sector export (JSON, XLSX or CSV),
    with the registered labs (XLSX, CSV)."""
    from certissuer.hub.catalogue import Catalogue
    from certissuer.hub.export import export_hub, write_hub_export
    from certissuer.report.sector import Cursor, SectorFormat

    try:
        kind = SectorFormat(fmt)
    except ValueError:
        raise InputError(
            "--format", f"expected one of {', '.join(SectorFormat)}, got '{fmt}'"
        ) from None
    after = Cursor.parse(since_cursor) if since_cursor else None
    hub = open_hub(db)
    try:
        data = export_hub(hub, after=after, now=datetime.now(UTC))
        labs = Catalogue(hub).labs() if kind is not SectorFormat.JSON else []
    finally:
        hub.close()
    files = write_hub_export(data, labs, kind, out)
    counts = ", ".join(f"{n} {k}" for k, n in data["counts"].items())
    if labs:
        counts += f", {len(labs)} labs"
    say(f"wrote {out}: {counts}" + (f" ({len(files)} files)" if len(files) > 1 else ""))
    say(f"cursor {data['cursor']}")


@hub_app.command("lab-profile")
def lab_profile(
    code: Annotated[str, typer.Option("--code", help="The registered lab's code.")],
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="verification, calibration or testing (repeat)."),
    ] = None,
    scope: Annotated[str | None, typer.Option(help="What it verifies, calibrates, tests.")] = None,
    accreditation: Annotated[
        str | None, typer.Option(help="Designation decision, VILAS number, expiry.")
    ] = None,
    paper_total: Annotated[
        int | None,
        typer.Option(
            "--paper-total",
            min=0,
            help="Certificates the lab holds on paper (the annual report's digitisation).",
        ),
    ] = None,
    paper_as_of: Annotated[
        str | None,
        typer.Option("--paper-as-of", help="The day the paper archive was counted (YYYY-MM-DD)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Record what a registered lab does, its scope, accreditation and paper archive."""
    from certissuer.hub.catalogue import Catalogue

    as_of = None
    if paper_as_of is not None:
        try:
            as_of = date.fromisoformat(paper_as_of)
        except ValueError:
            raise InputError(
                "--paper-as-of", f"expected a date YYYY-MM-DD, got '{paper_as_of}'"
            ) from None
    hub = open_hub(db)
    try:
        profile = Catalogue(hub).set_lab_profile(
            code,
            kinds=kind or (),
            scope=scope,
            accreditation=accreditation,
            paper_total=paper_total,
            paper_as_of=as_of,
        )
    finally:
        hub.close()
    paper = (
        "paper archive not reported"
        if profile.paper_total is None
        else f"paper archive {profile.paper_total}"
        + (f" as of {profile.paper_as_of.isoformat()}" if profile.paper_as_of else "")
    )
    say(f"lab {profile.code}: {profile.kinds or 'no kind given'}; {paper}")


@hub_app.command("reindex")
def reindex(db: DbOption = None) -> None:
    """Add to the catalogue the records a hub stored before it had one (once, after upgrading)."""
    from certissuer.hub.catalogue import Catalogue

    hub = open_hub(db)
    try:
        done = Catalogue(hub).index_missing()
    finally:
        hub.close()
    say(f"{done} records added to the catalogue")
