"""The yearly activity report of one lab (form 5.BCHĐ), from the ledger and the register.

Counts, per instrument type, the verifications that passed and failed and the calibration
certificates; the lab's verifiers, signatories and standards from the register. What the ledger
cannot know is left blank and marked `HAND`.

>>> data = activity_report(ledger.engine, year=2026, lab_code="L1")  # doctest: +SKIP
>>> write_activity_xlsx(data, Path("activity.xlsx"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from certissuer._tables import add_sheet, new_workbook, save_workbook
from certissuer._vn import local_date
from certissuer.config import Settings
from certissuer.errors import LedgerError
from certissuer.ledger import (
    CertificateEntry,
    EventKind,
    FailedVerification,
    LedgerEvent,
)
from certissuer.model import Kind
from certissuer.registry import Lab, Person, RegisteredStandard
from certissuer.report.layout import render_report
from certissuer.report.queries import (
    ISSUED,
    LATER_EVENTS,
    ReportCheckpoint,
    busiest_first,
    checkpoint_rows,
    instrument_types,
    json_text,
    latest_checkpoint,
    logged_events,
    period,
    read_connection,
    type_matcher,
    type_names,
    utc_start,
)

__all__ = [
    "HAND",
    "ActivityLine",
    "ActivityReport",
    "activity_report",
    "render_activity_pdf",
    "write_activity_xlsx",
]

HAND = "(điền tay / to be filled in by hand)"
"""What the activity report prints where the ledger cannot know the answer."""


@dataclass(frozen=True, slots=True)
class ActivityLine:
    """One line of form 5.BCHĐ: an instrument type (or quantity) and the work done on it."""

    type_code: str
    name: str
    verified: int
    """Verifications that passed (certificates issued)."""
    failed: int
    calibrated: int


@dataclass(frozen=True, slots=True)
class ActivityReport:
    """The service provider's yearly activity (form 5.BCHĐ of Circular 24/2013/TT-BKHCN)."""

    year: int
    start: date
    until: date
    lab_code: str
    lab_name_vi: str
    lab_name_en: str
    lab_address: str
    designation: str
    accreditation: str
    checkpoint: ReportCheckpoint
    lines: tuple[ActivityLine, ...]
    verifiers: int
    """Personnel of the lab holding a verifier card valid at the end of the period."""
    signatories: int
    standards: int
    """Reference standards of the lab in the register."""
    revoked: int
    amended: int

    @property
    def verified_total(self) -> int:
        """Verifications that passed."""
        return sum(x.verified for x in self.lines)

    @property
    def failed_total(self) -> int:
        """Verifications that failed."""
        return sum(x.failed for x in self.lines)

    @property
    def calibrated_total(self) -> int:
        """Calibration certificates."""
        return sum(x.calibrated for x in self.lines)


def activity_report(
    engine: Engine, *, year: int, lab_code: str, settings: Settings | None = None
) -> ActivityReport:
    """Compute the yearly activity report (form 5.BCHĐ) of lab `lab_code` for `year`.

    Counts, per instrument type, the verifications that passed (certificates), those that
    failed, and the calibration certificates, from 1 January to 31 December; the lab's
    verifiers (card valid on 31 December), signatories and standards from the register.
    Names and address come from the register's lab row, else from `settings`. Raises
    `LedgerError` as `annual_report` does.
    """
    start, end = period(year, None)
    issue_date = col(CertificateEntry.issue_date)
    try:
        with read_connection(engine) as conn, conn.begin():
            cp = latest_checkpoint(conn)
            types = instrument_types(conn)
            names = type_names(types)
            kind, name = col(CertificateEntry.kind), col(CertificateEntry.instrument_name)
            rows = conn.execute(
                logged_events(cp.tree_size, ISSUED, kind, name, func.count())
                .where(col(CertificateEntry.lab_code) == lab_code)
                # the form counts verifications and calibrations; test reports are not on it
                .where(
                    col(CertificateEntry.kind).in_(
                        (Kind.VERIFICATION.value, Kind.CALIBRATION.value)
                    )
                )
                .where(issue_date >= start, issue_date <= end)
                .group_by(kind, name)
            ).all()
            recorded = col(FailedVerification.recorded_at)
            name_json = json_text(conn, col(FailedVerification.data_json), "instrument", "name")
            failed_rows = conn.execute(
                select(name_json, func.count())
                .where(col(FailedVerification.lab_code) == lab_code)
                .where(recorded >= utc_start(start), recorded < utc_start(date(year + 1, 1, 1)))
                .group_by(name_json)
            ).all()
            at = col(LedgerEvent.at)
            event_rows = conn.execute(
                logged_events(cp.tree_size, LATER_EVENTS, col(LedgerEvent.kind), func.count())
                .where(col(CertificateEntry.lab_code) == lab_code)
                .where(at >= utc_start(start), at < utc_start(date(year + 1, 1, 1)))
                .group_by(col(LedgerEvent.kind))
            ).all()
            verifiers = conn.execute(
                select(func.count())
                .select_from(Person)
                .where(col(Person.lab_code) == lab_code, col(Person.verifier_card) != "")
                .where(col(Person.card_expiry).is_(None) | (col(Person.card_expiry) >= end))
            ).scalar()
            signatories = conn.execute(
                select(func.count())
                .select_from(Person)
                .where(col(Person.lab_code) == lab_code, col(Person.signatory).is_(True))
            ).scalar()
            standards = conn.execute(
                select(func.count())
                .select_from(RegisteredStandard)
                .where(col(RegisteredStandard.lab_code) == lab_code)
            ).scalar()
            lab = conn.execute(select(Lab).where(col(Lab.code) == lab_code)).first()
    except SQLAlchemyError as exc:
        raise LedgerError(f"the report could not be computed: {exc}") from exc
    match = type_matcher(types)
    lines: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for cert_kind, instrument, n in rows:
        lines[match(instrument)][0 if cert_kind == "verification" else 2] += int(n)
    for instrument, n in failed_rows:
        lines[match(instrument)][1] += int(n)
    events = {str(k): int(n) for k, n in event_rows}
    s = settings or Settings(lab_code=lab_code)
    return ActivityReport(
        year=year,
        start=start,
        until=end,
        lab_code=lab_code,
        lab_name_vi=(lab.name_vi if lab is not None and lab.name_vi else s.lab_name_vi),
        lab_name_en=(lab.name_en if lab is not None and lab.name_en else s.lab_name_en),
        lab_address=(lab.address_vi if lab is not None and lab.address_vi else s.lab_address_vi),
        designation=(lab.designation if lab is not None else "") or s.lab_designation,
        accreditation=(lab.accreditation if lab is not None else "") or s.lab_accreditation,
        checkpoint=cp,
        lines=tuple(
            ActivityLine(code, names.get(code, code), v, f, c)
            for code, (v, f, c) in busiest_first(lines)
        ),
        verifiers=int(verifiers or 0),
        signatories=int(signatories or 0),
        standards=int(standards or 0),
        revoked=events.get(EventKind.REVOKED.value, 0),
        amended=events.get(EventKind.SUPERSEDED.value, 0),
    )


def render_activity_pdf(
    data: ActivityReport, *, settings: Settings, signer_name: str, issued_on: date | None = None
) -> bytes:
    """The activity report (form 5.BCHĐ layout) as unsigned PDF bytes; fields the ledger
    cannot know are left blank and marked `HAND`. `issued_on` is the date of the
    place-and-date line: the day the report is signed (default: today in Vietnam), not the
    end of the year it reports."""
    context = {
        "r": data,
        "signer_name": signer_name,
        "issued_on": issued_on or local_date(datetime.now(UTC)),
        "hand": HAND,
    }
    return render_report("activity.rml.j2", context, settings)


def write_activity_xlsx(data: ActivityReport, path: Path) -> None:
    """Write the activity report's figures to an XLSX workbook at `path`, atomically."""
    wb = new_workbook()
    summary: list[list[Any]] = [
        ["year", data.year],
        ["lab_code", data.lab_code],
        *checkpoint_rows(data.checkpoint),
        ["verified", data.verified_total],
        ["failed", data.failed_total],
        ["calibrated", data.calibrated_total],
        ["revoked", data.revoked],
        ["amended", data.amended],
        ["verifiers", data.verifiers],
        ["signatories", data.signatories],
        ["standards", data.standards],
    ]
    add_sheet(wb, "summary", ["figure", "value"], summary)
    add_sheet(
        wb,
        "activity",
        ["type_code", "name", "verified", "failed", "calibrated"],
        ([x.type_code, x.name, x.verified, x.failed, x.calibrated] for x in data.lines),
    )
    save_workbook(wb, path)
