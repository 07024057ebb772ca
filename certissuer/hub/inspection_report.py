"""The year's inspection report of the hub: counts by place, kind of violation and instrument
type, as XLSX and as a PDF (Vietnamese first) signed with the Department's key.

>>> report = inspection_report(Inspections(hub), 2026)  # doctest: +SKIP
>>> write_xlsx(report, Path("kiem-tra-2026.xlsx"))  # doctest: +SKIP
>>> pdf = render_pdf(report, department=dept, sealer=sealer)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from certissuer._files import write_atomic
from certissuer._tables import no_formulas
from certissuer._vn import local_date
from certissuer.config import Settings
from certissuer.errors import ConfigError
from certissuer.hub.inspections import FOUND_LABELS, Found, InspectionCheck, Inspections
from certissuer.hub.verify import HUB_VERDICT_LABELS, HubVerdict
from certissuer.report.layout import render_report

__all__ = [
    "INFO_DIGEST_KEY",
    "Department",
    "InspectionReport",
    "Tally",
    "inspection_report",
    "render_pdf",
    "write_xlsx",
]

INFO_DIGEST_KEY = "CertissuerInspections"
"""PDF information key holding ``"<checks> <sha256>"`` of the checks the report counts."""

_UNKNOWN_TYPE = "(không rõ / unknown)"


@dataclass(frozen=True, slots=True)
class Department:
    """Who issues the report: the Department of Science and Technology running the hub."""

    name_vi: str = "Sở Khoa học và Công nghệ"
    name_en: str = "Department of Science and Technology"
    place: str = "Đồng Tháp"

    def settings(self, template_dir: Path | None = None) -> Settings:
        """The settings a hub report renders with: the Department in the lab's place."""
        return Settings(
            lab_code="HUB",
            lab_name_vi=self.name_vi,
            lab_name_en=self.name_en,
            lab_place=self.place,
            render_template_dir=template_dir,
        )

    def seal(
        self, pdf: bytes, sealer: Any | None, *, reason: str, info: dict[str, str] | None = None
    ) -> bytes:
        """`pdf` signed by `sealer` (a `sign.Sealer` holding the Department's key) in the
        report's "Người lập báo cáo / Prepared by" field; `pdf` as it is without one. Raises
        `ConfigError` when the key's certificate names no one, and `SigningError`."""
        if sealer is None:
            return pdf
        if not sealer.signer_name:
            raise ConfigError("the Department's signing certificate names no one")
        from certissuer.sign import SignatureSlot

        return bytes(
            sealer.sign(
                pdf,
                info=info,
                reason=reason,
                location=self.place,
                slot=SignatureSlot(
                    "Signature1", "Người lập báo cáo / Prepared by", sealer.signer_name
                ),
            )
        )


@dataclass(frozen=True, slots=True)
class Tally:
    """One row of a table: what it counts, checks, and checks with a violation."""

    label: str
    checks: int
    violations: int


@dataclass(frozen=True, slots=True)
class InspectionReport:
    """The counts of one year's inspection rounds."""

    year: int
    rounds: int
    checks: int
    violations: int
    by_place: list[Tally] = field(default_factory=list)
    by_found: list[Tally] = field(default_factory=list)
    """Each kind of finding (violations and "none"), checks per kind."""
    by_type: list[Tally] = field(default_factory=list)
    by_verdict: list[Tally] = field(default_factory=list)
    """The hub's verdicts at the time of each check."""
    digest: str = ""
    """SHA-256 of the checks counted (ids, verdicts, findings), bound into the signed PDF."""


def _tallies(pairs: Iterable[tuple[str, bool]]) -> list[Tally]:
    checks: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    for label, violation in pairs:
        checks[label] += 1
        bad[label] += violation
    return [Tally(k, checks[k], bad[k]) for k in sorted(checks, key=lambda k: (-checks[k], k))]


def inspection_report(inspections: Inspections, year: int) -> InspectionReport:
    """Count the rounds of `year` held in `inspections` and their checks."""
    rounds = inspections.rounds(year)
    place_of = {r.id: r.place for r in rounds}
    checks = inspections.checks([r.id for r in rounds if r.id is not None])

    def violation(c: InspectionCheck) -> bool:
        return c.found != Found.NONE.value

    found_rows = [
        Tally(
            f"{vi} / {en}",
            sum(c.found == f.value for c in checks),
            sum(c.found == f.value for c in checks) if f is not Found.NONE else 0,
        )
        for f, (vi, en) in FOUND_LABELS.items()
    ]
    verdicts = Counter(c.verdict for c in checks)
    bad_verdicts = Counter(c.verdict for c in checks if violation(c))
    verdict_rows = [
        Tally(f"{vi} / {en}", verdicts[v.value], bad_verdicts[v.value])
        for v, (vi, en) in HUB_VERDICT_LABELS.items()
        if verdicts[v.value] or v is HubVerdict.VALID
    ]
    canon = json.dumps(
        [[c.id, c.round_id, c.number, c.verdict, c.found, c.instrument_type] for c in checks],
        ensure_ascii=False,
    )
    return InspectionReport(
        year=year,
        rounds=len(rounds),
        checks=len(checks),
        violations=sum(violation(c) for c in checks),
        by_place=_tallies((place_of[c.round_id], violation(c)) for c in checks),
        by_found=found_rows,
        by_type=_tallies((c.instrument_type or _UNKNOWN_TYPE, violation(c)) for c in checks),
        by_verdict=verdict_rows,
        digest=hashlib.sha256(canon.encode()).hexdigest(),
    )


def write_xlsx(report: InspectionReport, path: Path) -> None:
    """Write `report` to `path` as XLSX: a sheet per table, Vietnamese then English headings."""
    from io import BytesIO

    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    summary = book.active
    summary.title = "Tong hop"
    summary.append(["Năm / Year", report.year])
    summary.append(["Số đợt kiểm tra / Rounds", report.rounds])
    summary.append(["Số phương tiện được kiểm tra / Instruments checked", report.checks])
    summary.append(["Số vi phạm / Violations", report.violations])
    sheets = (
        ("Dia diem", "Địa điểm / Place", report.by_place),
        ("Vi pham", "Loại vi phạm / Kind of violation", report.by_found),
        ("Loai PTD", "Loại phương tiện đo / Instrument type", report.by_type),
        ("Ket qua tra cuu", "Kết quả tra cứu / Verdict", report.by_verdict),
    )
    for title, heading, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append([heading, "Số lượt kiểm tra / Checks", "Vi phạm / Violations"])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([row.label, row.checks, row.violations])
        sheet.column_dimensions["A"].width = 48
    no_formulas(book)  # names and places others typed stay text
    buffer = BytesIO()
    book.save(buffer)
    write_atomic(path, buffer.getvalue())


def render_pdf(
    report: InspectionReport,
    *,
    department: Department,
    sealer: Any | None = None,
    issued_on: date | None = None,
    template_dir: Path | None = None,
) -> bytes:
    """`report` as PDF through the report templates (embedded fonts, page x of y), signed by
    `sealer` (a `sign.Sealer` holding the Department's key) when given.

    The signed revision's information dictionary carries `INFO_DIGEST_KEY`. Raises
    `TemplateError` and `SigningError`.
    """
    settings = department.settings(template_dir)
    signer_name = sealer.signer_name if sealer is not None else ""
    context = {
        "r": report,
        "issued_on": issued_on or local_date(datetime.now(UTC)),
        "signer_name": signer_name,
    }
    pdf = render_report("inspections.rml.j2", context, settings)
    return department.seal(
        pdf,
        sealer,
        info={INFO_DIGEST_KEY: f"{report.checks} {report.digest}"},
        reason=f"Báo cáo kiểm tra đo lường năm {report.year} / Inspections {report.year}",
    )
