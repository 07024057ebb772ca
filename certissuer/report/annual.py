"""Reports for the authorities: the annual measurement report and the activity report (form
5.BCHĐ), from the ledger and the register, as signed bilingual PDFs and XLSX workbooks.

Every figure comes from SQL aggregate queries (``GROUP BY`` and ``SUM(CASE …)`` month
buckets), never from loading rows one by one, so a ledger of 100,000 certificates reports in
seconds. The certificate figures count only events inside the ledger's newest signed
checkpoint (tree size and root), which the report prints, so each number can be traced to
the Merkle log; the register figures (overdue instruments, standards due) are those of the
register at the change number the report also prints. This module only reads.

>>> ledger = Ledger.open(settings.ledger_url)  # doctest: +SKIP
>>> data = annual_report(ledger.engine, year=2026, until=date(2026, 11, 20))  # doctest: +SKIP
>>> data.issued_total, data.checkpoint.tree_size  # doctest: +SKIP
(1843, 1907)
>>> pdf = render_annual_pdf(data, settings=settings, signer_name="Lê Hoàng Phúc")  # doctest: +SKIP
>>> write_annual_xlsx(data, Path("report.xlsx"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, func, select
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
from certissuer.registry import Instrument, Lab, Owner, RegisteredStandard, load_instrument_types
from certissuer.report.layout import KIND_LABELS, month_names, nice_max, render_report
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
    month_buckets,
    month_edges,
    period,
    read_connection,
    type_matcher,
    type_names,
    utc_start,
)

__all__ = [
    "DIGITISATION_TARGET_YEAR",
    "UNCLASSIFIED",
    "UNSPECIFIED",
    "AnnualReport",
    "Digitisation",
    "EventCounts",
    "LabFigures",
    "OverdueGroup",
    "QuantityCount",
    "StandardDue",
    "TypeResult",
    "annual_report",
    "render_annual_pdf",
    "write_annual_xlsx",
]

_logger = logging.getLogger(__name__)

DIGITISATION_TARGET_YEAR = 2030
"""The provincial plan judges the move from paper to electronic records by the end of 2030."""
UNCLASSIFIED = "(chưa phân loại / unclassified)"
UNSPECIFIED = "(không rõ / unspecified)"


@dataclass(frozen=True, slots=True)
class TypeResult:
    """Verifications of one instrument type: passed (a certificate) and failed (none)."""

    type_code: str
    type_name: str
    passed: int
    failed: int


@dataclass(frozen=True, slots=True)
class QuantityCount:
    """Calibration certificates of one quantity (the first result's quantity)."""

    quantity: str
    count: int


@dataclass(frozen=True, slots=True)
class EventCounts:
    """Revocations and amendments (supersessions) of one kind of certificate, per month."""

    kind: str
    revoked: tuple[int, ...]
    amended: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class OverdueGroup:
    """Registered instruments whose certificate had expired, for one owner type and place."""

    owner_kind: str
    place: str
    count: int


@dataclass(frozen=True, slots=True)
class StandardDue:
    """A reference standard past or near its calibration due date."""

    lab_code: str
    code: str
    name: str
    serial: str
    certificate_number: str
    calibration_due: date
    overdue: bool


@dataclass(frozen=True, slots=True)
class Digitisation:
    """Paper certificates digitised against certificates issued electronically, cumulative."""

    electronic: tuple[int, ...]
    """Certificates issued electronically since the ledger began, at the end of each month."""
    digitised: tuple[int, ...]
    """Paper certificates digitised (electronic copies) since the ledger began, by month end."""
    paper_total: int | None
    """Paper certificates in the archive to digitise, when given; None: not known."""
    target_year: int = DIGITISATION_TARGET_YEAR

    @property
    def share_digitised(self) -> float | None:
        """Digitised / paper archive at the end of the period, or None without a total."""
        if not self.paper_total:
            return None
        return min(1.0, self.digitised[-1] / self.paper_total)

    @property
    def share_electronic(self) -> float | None:
        """Share of all records that are electronic at the end of the period."""
        total = self.electronic[-1] + (
            self.paper_total if self.paper_total is not None else self.digitised[-1]
        )
        if total == 0:
            return None
        return (self.electronic[-1] + self.digitised[-1]) / total

    def needed_per_month(self, until: date) -> int | None:
        """Copies still to make each month to finish the archive by the end of `target_year`."""
        if self.paper_total is None:
            return None
        left = max(0, self.paper_total - self.digitised[-1])
        months = (self.target_year - until.year) * 12 + (12 - until.month)
        return left if months <= 0 else -(-left // months)


@dataclass(frozen=True, slots=True)
class LabFigures:
    """One lab's figures for the period."""

    lab_code: str
    name: str
    verification: int
    calibration: int
    failed: int
    revoked: int
    amended: int
    digitised: int
    testing: int = 0
    """Testing reports issued (phiếu kết quả thử nghiệm, issue 22)."""


@dataclass(frozen=True, slots=True)
class AnnualReport:
    """Every figure of the annual measurement report (see `annual_report`)."""

    year: int
    start: date
    until: date
    checkpoint: ReportCheckpoint
    months: tuple[int, ...]
    """Month numbers of the period (1 … the month of `until`)."""
    issued: Mapping[str, tuple[int, ...]]
    """Certificates issued per kind (verification, calibration), per month of `months`."""
    verification_results: tuple[TypeResult, ...]
    calibration_quantities: tuple[QuantityCount, ...]
    events: tuple[EventCounts, ...]
    overdue: tuple[OverdueGroup, ...]
    instruments_registered: int
    standards_due: tuple[StandardDue, ...]
    standards_window_days: int
    digitisation: Digitisation
    digitised_in_period: int
    labs: tuple[LabFigures, ...]

    @property
    def issued_total(self) -> int:
        """Certificates issued in the period (copies of paper certificates not included)."""
        return sum(sum(v) for v in self.issued.values())

    @property
    def failed_total(self) -> int:
        """Failed verifications in the period (no certificate issued)."""
        return sum(r.failed for r in self.verification_results)

    @property
    def revoked_total(self) -> int:
        """Revocations in the period."""
        return sum(sum(e.revoked) for e in self.events)

    @property
    def amended_total(self) -> int:
        """Amendments (certificates superseded by a new one) in the period."""
        return sum(sum(e.amended) for e in self.events)

    @property
    def overdue_total(self) -> int:
        """Registered instruments whose certificate had expired on `until`."""
        return sum(g.count for g in self.overdue)

    @property
    def empty(self) -> bool:
        """True when the ledger recorded nothing in the period (no certificate, failure,
        revocation, amendment or copy)."""
        return not (
            self.issued_total
            or self.failed_total
            or self.revoked_total
            or self.amended_total
            or self.digitised_in_period
        )


def annual_report(
    engine: Engine,
    *,
    year: int,
    until: date | None = None,
    paper_total: int | None = None,
    standards_window_days: int = 90,
    instrument_types_file: Path | None = None,
) -> AnnualReport:
    """Compute the annual measurement report of `year` from the ledger and register.

    `engine` is the ledger's engine (`Ledger.engine`); `until` ends the period early (the
    report is due before 25 November); `paper_total` is the number of paper certificates in
    the archive, for the digitisation target; `standards_window_days` how far after `until`
    a standard's calibration due date counts as "due"; `instrument_types_file` is the lab's cycle
    table (TOML) used, like the shipped one by default, to name instrument types while the
    register holds none, as the issuing checks do. Certificates count by their issue date
    (Vietnamese calendar), revocations, amendments and failures by when they were recorded;
    only events inside the newest checkpoint count. Electronic copies of paper certificates
    count as digitised, not as issued. Raises `LedgerError` when there is no checkpoint or the
    database fails, `InputError` when `until` is not in `year`.
    """
    start, end = period(year, until)
    edges = month_edges(start, end)
    months = tuple(d.month for d in edges[:-1])
    utc_edges = [utc_start(d) for d in edges]
    try:
        with read_connection(engine) as conn, conn.begin():
            cp = latest_checkpoint(conn)
            size = cp.tree_size
            # the register's types, else the cycle table the issuing checks use without one
            types = instrument_types(conn) or load_instrument_types(instrument_types_file)
            names = type_names(types)
            lab_names = {
                str(code): str(name)
                for code, name in conn.execute(select(col(Lab.code), col(Lab.name_vi)))
            }

            # certificates issued, per lab, kind and month; and everything before the year
            issue_date = col(CertificateEntry.issue_date)
            lab_col, kind_col = col(CertificateEntry.lab_code), col(CertificateEntry.kind)
            name_col = col(CertificateEntry.instrument_name)
            before_year = func.coalesce(func.sum(case((issue_date < start, 1), else_=0)), 0)
            buckets = month_buckets(issue_date, edges)
            issued_rows = conn.execute(
                logged_events(size, ISSUED, lab_col, kind_col, before_year, *buckets)
                .where(issue_date <= end)
                .group_by(lab_col, kind_col)
            ).all()
            issued: dict[str, list[int]] = {
                "verification": [0] * len(months),
                "calibration": [0] * len(months),
                "testing": [0] * len(months),
            }
            before = {"electronic": 0, "copy": 0}
            copies = [0] * len(months)
            per_lab: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for lab_code, kind, earlier, *counts in issued_rows:
                if kind == "failure":
                    continue  # a notice of failure: counted with the failed verifications
                if kind == "copy":
                    before["copy"] += int(earlier)
                    copies = [a + int(b) for a, b in zip(copies, counts, strict=True)]
                    per_lab[lab_code]["digitised"] += sum(int(c) for c in counts)
                    continue
                before["electronic"] += int(earlier)
                row = issued.setdefault(str(kind), [0] * len(months))
                issued[str(kind)] = [a + int(b) for a, b in zip(row, counts, strict=True)]
                per_lab[lab_code][str(kind)] += sum(int(c) for c in counts)

            # verification results per instrument type: passed (certificates), failed
            passed_rows = conn.execute(
                logged_events(size, ISSUED, name_col, func.count())
                .where(kind_col == "verification")
                .where(issue_date >= start, issue_date <= end)
                .group_by(name_col)
            ).all()
            recorded = col(FailedVerification.recorded_at)
            failed_rows = conn.execute(
                select(
                    col(FailedVerification.lab_code),
                    json_text(conn, col(FailedVerification.data_json), "instrument", "name"),
                    func.count(),
                )
                .where(recorded >= utc_edges[0], recorded < utc_edges[-1])
                .group_by(
                    col(FailedVerification.lab_code),
                    json_text(conn, col(FailedVerification.data_json), "instrument", "name"),
                )
            ).all()
            results: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            match = type_matcher(types)
            for instrument, n in passed_rows:
                results[match(instrument)][0] += int(n)
            for lab_code, instrument, n in failed_rows:
                results[match(instrument)][1] += int(n)
                per_lab[lab_code]["failed"] += int(n)
            verification_results = tuple(
                TypeResult(code, names.get(code, code), p, f)
                for code, (p, f) in busiest_first(results)
            )

            # calibration certificates per quantity
            quantity = json_text(conn, col(CertificateEntry.data_json), "results", 0, "quantity")
            cal_rows = conn.execute(
                logged_events(size, ISSUED, quantity, name_col, func.count())
                .where(kind_col == "calibration")
                .where(issue_date >= start, issue_date <= end)
                .group_by(quantity, name_col)
            ).all()
            type_quantity = {t.code: t.quantity for t in types}
            quantities: dict[str, int] = defaultdict(int)
            for q, instrument, n in cal_rows:
                label = str(q or "").strip() or type_quantity.get(match(instrument), "")
                quantities[label or UNSPECIFIED] += int(n)
            calibration_quantities = tuple(
                QuantityCount(q, n) for q, n in sorted(quantities.items(), key=lambda kv: -kv[1])
            )

            # revocations and amendments, per kind and month
            at = col(LedgerEvent.at)
            event_kind = col(LedgerEvent.kind)
            event_rows = conn.execute(
                logged_events(
                    size, LATER_EVENTS, lab_col, kind_col, event_kind, *month_buckets(at, utc_edges)
                )
                .where(at >= utc_edges[0], at < utc_edges[-1])
                .group_by(lab_col, kind_col, event_kind)
            ).all()
            by_kind: dict[str, dict[str, list[int]]] = {}
            for lab_code, cert_kind, what, *counts in event_rows:
                slot = by_kind.setdefault(
                    str(cert_kind), {"revoked": [0] * len(months), "amended": [0] * len(months)}
                )
                key = "revoked" if what == EventKind.REVOKED.value else "amended"
                slot[key] = [a + int(b) for a, b in zip(slot[key], counts, strict=True)]
                per_lab[lab_code][key] += sum(int(c) for c in counts)
            events = tuple(
                EventCounts(k, tuple(v["revoked"]), tuple(v["amended"]))
                for k, v in sorted(by_kind.items())
            )

            # the register: instruments overdue on `until`, by owner type and place
            overdue_rows = conn.execute(
                select(col(Owner.kind), col(Instrument.place_of_use), func.count())
                .select_from(Instrument)
                .join(Owner, col(Owner.id) == col(Instrument.owner_id))
                .where(col(Instrument.valid_until) < end)
                .group_by(col(Owner.kind), col(Instrument.place_of_use))
            ).all()
            overdue = tuple(
                sorted(
                    (
                        OverdueGroup(str(k or "") or UNCLASSIFIED, str(p or "") or UNSPECIFIED, n)
                        for k, p, n in overdue_rows
                    ),
                    key=lambda g: (-g.count, g.owner_kind, g.place),
                )
            )
            registered = int(
                conn.execute(select(func.count()).select_from(Instrument)).scalar() or 0
            )
            horizon = end + timedelta(days=standards_window_days)
            standards = tuple(
                StandardDue(
                    r.lab_code,
                    r.code,
                    r.name,
                    r.serial,
                    r.certificate_number,
                    r.calibration_due,
                    r.calibration_due < end,
                )
                for r in conn.execute(
                    select(RegisteredStandard)
                    .where(col(RegisteredStandard.calibration_due) <= horizon)
                    .order_by(col(RegisteredStandard.calibration_due), col(RegisteredStandard.code))
                )
            )
    except SQLAlchemyError as exc:
        raise LedgerError(f"the report could not be computed: {exc}") from exc

    electronic, digitised = [], []
    running_e, running_d = before["electronic"], before["copy"]
    for i in range(len(months)):
        running_e += sum(v[i] for v in issued.values())
        running_d += copies[i]
        electronic.append(running_e)
        digitised.append(running_d)
    labs = tuple(
        LabFigures(
            code,
            lab_names.get(code, ""),
            v["verification"],
            v["calibration"],
            v["failed"],
            v["revoked"],
            v["amended"],
            v["digitised"],
            v["testing"],
        )
        for code, v in sorted(per_lab.items())
    )
    return AnnualReport(
        year=year,
        start=start,
        until=end,
        checkpoint=cp,
        months=months,
        issued={k: tuple(v) for k, v in issued.items()},
        verification_results=verification_results,
        calibration_quantities=calibration_quantities,
        events=events,
        overdue=overdue,
        instruments_registered=registered,
        standards_due=standards,
        standards_window_days=standards_window_days,
        digitisation=Digitisation(tuple(electronic), tuple(digitised), paper_total),
        digitised_in_period=sum(copies),
        labs=labs,
    )


def _annual_context(data: AnnualReport, signer_name: str, issued_on: date) -> dict[str, Any]:
    months = list(data.months)
    ver = list(data.issued.get("verification", (0,) * len(months)))
    cal = list(data.issued.get("calibration", (0,) * len(months)))
    tst = list(data.issued.get("testing", (0,) * len(months)))
    issued_max = nice_max([*ver, *cal, *tst])
    top_types = list(data.verification_results[:10])
    types_max = nice_max([x for t in top_types for x in (t.passed, t.failed)])
    dig = data.digitisation
    line_values = [*dig.electronic, *dig.digitised]  # the paper archive is printed, not drawn
    owner_kinds: dict[str, int] = defaultdict(int)
    places: dict[str, int] = defaultdict(int)
    for g in data.overdue:
        owner_kinds[g.owner_kind] += g.count
        places[g.place] += g.count
    top_places = sorted(places.items(), key=lambda kv: (-kv[1], kv[0]))
    share = dig.share_digitised
    return {
        "r": data,
        "signer_name": signer_name,
        "issued_on": issued_on,
        "kinds": KIND_LABELS,
        "month_names": month_names(months),
        "ver": ver,
        "cal": cal,
        "tst": tst,
        "issued_max": issued_max,
        "top_types": top_types,
        "types_max": types_max,
        "line_max": nice_max(line_values),
        "owner_kinds": sorted(owner_kinds.items(), key=lambda kv: (-kv[1], kv[0])),
        "owner_max": nice_max(owner_kinds.values()),
        "top_places": top_places[:15],
        "other_places": sum(n for _, n in top_places[15:]),
        "other_places_count": max(0, len(top_places) - 15),
        "share_digitised": None if share is None else f"{share * 100:.1f} %",
        "share_electronic": (
            None if dig.share_electronic is None else f"{dig.share_electronic * 100:.1f} %"
        ),
        "needed_per_month": dig.needed_per_month(data.until),
        "month_totals": [a + b + c for a, b, c in zip(ver, cal, tst, strict=True)],
    }


def render_annual_pdf(
    data: AnnualReport, *, settings: Settings, signer_name: str, issued_on: date | None = None
) -> bytes:
    """The annual report as unsigned PDF bytes: bilingual (Vietnamese, English beneath in
    smaller type), tables and reportlab charts, the checkpoint on every page.

    `signer_name` is printed where the visible signature goes (see `sign_report`);
    `issued_on` is the date of the place-and-date line, the day the report is signed
    (default: today in Vietnam), not the end of the period. Raises `TemplateError` when the
    template is missing or broken.
    """
    context = _annual_context(data, signer_name, issued_on or local_date(datetime.now(UTC)))
    return render_report("annual.rml.j2", context, settings)


def write_annual_xlsx(data: AnnualReport, path: Path) -> None:
    """Write every figure of `data` to an XLSX workbook at `path` (one sheet per table, a
    header row each; the checkpoint in the ``summary`` sheet), atomically."""
    wb = new_workbook()
    summary: list[list[Any]] = [
        ["year", data.year],
        ["from", data.start.isoformat()],
        ["until", data.until.isoformat()],
        *checkpoint_rows(data.checkpoint),
        ["issued_total", data.issued_total],
        ["issued_verification", sum(data.issued.get("verification", ()))],
        ["issued_calibration", sum(data.issued.get("calibration", ()))],
        ["issued_testing", sum(data.issued.get("testing", ()))],
        ["verification_failed", data.failed_total],
        ["revoked", data.revoked_total],
        ["amended", data.amended_total],
        ["digitised_in_period", data.digitised_in_period],
        ["instruments_registered", data.instruments_registered],
        ["instruments_overdue", data.overdue_total],
        ["standards_due", len(data.standards_due)],
        ["empty", "yes" if data.empty else "no"],
    ]
    add_sheet(wb, "summary", ["figure", "value"], summary)
    kinds = sorted(data.issued)
    by_month = []
    for i, month in enumerate(data.months):
        counts = [data.issued[k][i] for k in kinds]
        by_month.append([month, *counts, sum(counts)])
    add_sheet(wb, "issued_by_month", ["month", *kinds, "total"], by_month)
    add_sheet(
        wb,
        "verification_by_type",
        ["type_code", "type_name", "passed", "failed", "total"],
        ([t.type_code, t.type_name, t.passed, t.failed, t.passed + t.failed]
         for t in data.verification_results),
    )  # fmt: skip
    add_sheet(
        wb,
        "calibration_by_quantity",
        ["quantity", "certificates"],
        ([q.quantity, q.count] for q in data.calibration_quantities),
    )
    add_sheet(
        wb,
        "revocations_amendments",
        ["kind", "month", "revoked", "amended"],
        ([e.kind, month, e.revoked[i], e.amended[i]]
         for e in data.events for i, month in enumerate(data.months)),
    )  # fmt: skip
    add_sheet(
        wb,
        "overdue_instruments",
        ["owner_kind", "place_of_use", "instruments"],
        ([g.owner_kind, g.place, g.count] for g in data.overdue),
    )
    add_sheet(
        wb,
        "standards_due",
        ["lab_code", "code", "name", "serial", "certificate", "calibration_due", "status"],
        ([st.lab_code, st.code, st.name, st.serial, st.certificate_number,
          st.calibration_due.isoformat(), "overdue" if st.overdue else "due"]
         for st in data.standards_due),
    )  # fmt: skip
    dig = data.digitisation
    add_sheet(
        wb,
        "digitisation",
        ["month", "electronic_cumulative", "digitised_cumulative", "paper_total", "target_year"],
        ([month, dig.electronic[i], dig.digitised[i], dig.paper_total, dig.target_year]
         for i, month in enumerate(data.months)),
    )  # fmt: skip
    add_sheet(
        wb,
        "labs",
        ["lab_code", "name", "verification", "calibration", "testing", "failed", "revoked",
         "amended", "digitised"],
        ([lab.lab_code, lab.name, lab.verification, lab.calibration, lab.testing, lab.failed,
          lab.revoked, lab.amended, lab.digitised] for lab in data.labs),
    )  # fmt: skip
    save_workbook(wb, path)
