"""The hub's annual report: the provincial plan's indicators, from what the labs pushed.

Four parts, each figure with the source it came from, and "not reported" where there is no
data (never a 0 for what is unknown):

* per instrument type, certificates issued in the year by the registered labs against the
  demand: the instruments of the labs' registers due in the year (their validity ends in the
  year, or they were verified in the year), or, for a type the registers lack, a count from a
  demand CSV (``type,count``);
* per lab, the digitisation of its paper archive: electronic copies of paper certificates
  pushed, against the paper total the lab declares (a CSV ``lab_code,paper_total`` given for
  the report, else its profile at the hub, ``hub lab-profile --paper-total``), measured
  against the 2030 target (100 %);
* the year's inspection rounds and violations (`certissuer.hub.inspection_report`);
* training and enterprise support, left blank to be filled in by hand.

>>> report = hub_annual_report(hub, 2026, demand=read_demand(Path("demand.csv")))  # doctest: +SKIP
>>> write_xlsx(report, Path("hub-2026.xlsx"))  # doctest: +SKIP
>>> pdf = render_pdf(report, department=Department(), sealer=sealer)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from certissuer._files import write_atomic
from certissuer._tables import csv_rows, no_formulas
from certissuer._vn import local_date
from certissuer.errors import ConfigError, InputError
from certissuer.hub.catalogue import HubLabProfile, identity
from certissuer.hub.inspection_report import Department, InspectionReport, inspection_report
from certissuer.hub.inspections import Inspections
from certissuer.hub.store import Hub
from certissuer.hub.tables import HubCertificate, HubRecord
from certissuer.registry import load_instrument_types
from certissuer.report.layout import render_report
from certissuer.report.queries import OTHER_TYPE, type_matcher, type_names

__all__ = [
    "HAND",
    "NOT_REPORTED",
    "TARGET_YEAR",
    "HubAnnualReport",
    "LabDigitisation",
    "Source",
    "TypeDemand",
    "hub_annual_report",
    "read_demand",
    "read_paper_totals",
    "render_pdf",
    "write_xlsx",
]

_logger = logging.getLogger(__name__)

TARGET_YEAR = 2030
"""The plan's year for every lab's paper archive to be electronic (100 %)."""
NOT_REPORTED = "chưa báo cáo / not reported"
"""What a figure without data reads (never 0)."""
HAND = "điền tay / filled by hand"
"""The mark of a field the report leaves for the Department to fill in."""

ISSUING_KINDS = ("verification", "calibration", "testing")
"""Certificate kinds that count as issued (an electronic copy of a paper one does not)."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a figure came from, both languages."""

    vi: str
    en: str

    def __str__(self) -> str:
        return f"{self.vi} / {self.en}"


PUSHED = Source("dữ liệu các tổ chức đẩy lên", "records pushed by the labs")
REGISTER = Source("sổ đăng ký phương tiện đo của các tổ chức", "the labs' instrument registers")
NONE = Source("không có dữ liệu", "no data")


@dataclass(frozen=True, slots=True)
class TypeDemand:
    """One instrument type: certificates issued in the year against the demand."""

    code: str
    label: str
    issued: int
    demand: int | None
    """Instruments due in the year; None when neither the registers nor a CSV give it."""
    demand_source: Source

    @property
    def share(self) -> float | None:
        """Issued / demand, or None when the demand is unknown or zero."""
        return self.issued / self.demand if self.demand else None


@dataclass(frozen=True, slots=True)
class LabDigitisation:
    """One lab's move from paper to electronic records."""

    code: str
    name: str
    digitised: int
    """Electronic copies of paper certificates pushed, issued up to the end of the year."""
    paper_total: int | None
    """The paper archive the lab declares; None when not reported."""
    paper_source: Source

    @property
    def share(self) -> float | None:
        """Digitised / paper archive (at most 1), or None without a paper total."""
        if not self.paper_total:
            return None
        return min(1.0, self.digitised / self.paper_total)


@dataclass(frozen=True, slots=True)
class HubAnnualReport:
    """The plan's indicators for `year`."""

    year: int
    types: list[TypeDemand] = field(default_factory=list)
    labs: list[LabDigitisation] = field(default_factory=list)
    inspections: InspectionReport | None = None
    target_year: int = TARGET_YEAR

    @property
    def issued_total(self) -> int:
        """Certificates issued in the year by the registered labs (copies not included)."""
        return sum(t.issued for t in self.types)


def _in_year(value: date | str | None, year: int) -> bool:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return False
    return value is not None and value.year == year


def read_demand(path: Path) -> dict[str, int]:
    """Read a demand CSV: header ``type,count``, one row per instrument type (its code or its
    name, as the cycle table has it). Raises `InputError` naming the row and field."""
    return _read_counts(path, ("type", "count"))


def read_paper_totals(path: Path) -> dict[str, int]:
    """Read a CSV ``lab_code,paper_total``: each lab's paper archive (certificates on paper).
    Raises `InputError` naming the row and field."""
    return _read_counts(path, ("lab_code", "paper_total"))


def _read_counts(path: Path, header: tuple[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row, cells in csv_rows(path):
        if row == 1:
            if [c.lower() for c in cells[:2]] != list(header):
                raise InputError(
                    path, f"expected the header '{','.join(header)}', got '{','.join(cells)}'"
                )
            continue
        if not any(cells):
            continue
        if len(cells) < 2 or not cells[0]:
            raise InputError(path, "expected a value", row=row, field=header[0])
        try:
            count = int(cells[1])
        except ValueError:
            count = -1
        if count < 0:
            raise InputError(
                path, f"expected a whole number >= 0, got '{cells[1]}'", row=row, field=header[1]
            )
        if cells[0] in out:
            raise InputError(path, f"'{cells[0]}' is given twice", row=row, field=header[0])
        out[cells[0]] = count
    return out


def hub_annual_report(
    hub: Hub,
    year: int,
    *,
    demand: Mapping[str, int] | None = None,
    demand_file: str = "",
    paper_totals: Mapping[str, int] | None = None,
    paper_file: str = "",
    types_path: Path | None = None,
) -> HubAnnualReport:
    """The plan's indicators for `year` from the records `hub` holds.

    `demand` (type code or name -> count, e.g. `read_demand`) fills the demand of the types the
    registers lack; `paper_totals` (lab code -> paper archive) gives each lab's paper total,
    else its profile at the hub (`HubLabProfile.paper_total`) does; `demand_file` and
    `paper_file` name them as sources. `types_path` is the cycle table
    (default: the shipped one). Raises `ConfigError` for a demand row naming no known type or a
    paper total for an unregistered lab, and `LedgerError` when the database fails.
    """
    types = load_instrument_types(types_path)
    names = type_names(types)
    match = type_matcher(types)

    def type_of(code: Any, name: Any) -> str:
        code = str(code or "")
        return code if code in names else match(name)

    issued: Counter[str] = Counter()
    copies: Counter[str] = Counter()
    due: dict[str, str] = {}  # one instrument (across labs) -> its type
    with hub.session() as s:
        for cert in s.exec(select(HubCertificate)):
            if cert.kind == "copy":
                if cert.issue_date is None or cert.issue_date.year <= year:
                    copies[cert.lab_code] += 1
            elif cert.kind in ISSUING_KINDS and _in_year(cert.issue_date, year):
                record = json.loads(cert.record_json)
                issued[type_of(None, record.get("instrument_name"))] += 1
        rows = s.exec(
            select(HubRecord)
            .where(HubRecord.kind == "instruments")
            .order_by(col(HubRecord.lab_code), col(HubRecord.key))
        )
        for rec in rows:
            data = json.loads(rec.record_json)
            if _in_year(data.get("valid_until"), year) or _in_year(data.get("verified_on"), year):
                one = identity(data.get("serial"), data.get("model")) or f"{rec.lab_code}|{rec.key}"
                due.setdefault(one, type_of(data.get("type_code"), data.get("name")))
    registered = Counter(due.values())

    given: dict[str, int] = {}
    for key, count in (demand or {}).items():
        code = type_of(key, key)
        if code == OTHER_TYPE and key != OTHER_TYPE:
            raise ConfigError(
                f"{demand_file or 'demand'}: '{key}' is no instrument type of the cycle table",
                hint="use a type's code or name as `certissuer registry types` lists them",
            )
        given[code] = given.get(code, 0) + count
    from_csv = (
        Source(f"tệp {demand_file}", f"file {demand_file}")
        if demand_file
        else Source("số liệu nhu cầu được cung cấp", "demand figures given")
    )

    rows_out = []
    for code in sorted(set(issued) | set(registered) | set(given), key=lambda c: (-issued[c], c)):
        if registered[code]:
            need: int | None = registered[code]
            source = REGISTER
        elif code in given:
            need, source = given[code], from_csv
        else:
            need, source = None, NONE
        rows_out.append(TypeDemand(code, names.get(code, code), issued[code], need, source))

    papers = dict(paper_totals or {})
    labs = hub.labs()
    known = {lab.code for lab in labs}
    for code in papers:
        if code not in known:
            raise ConfigError(f"{paper_file or 'paper totals'}: lab {code} is not registered")
    paper_source = (
        Source(f"tệp {paper_file}", f"file {paper_file}")
        if paper_file
        else Source("tổ chức khai", "declared by the lab")
    )
    with hub.session() as s:
        profiles = {p.code: p for p in s.exec(select(HubLabProfile))}
    lab_rows = []
    for lab in labs:
        total, source = papers.get(lab.code), paper_source
        profile = profiles.get(lab.code)
        if total is None and profile is not None and profile.paper_total is not None:
            # The file given for the report wins; else what the lab declared at the hub.
            total, source = profile.paper_total, _profile_source(profile.paper_as_of)
        lab_rows.append(
            LabDigitisation(
                lab.code, lab.name, copies[lab.code], total, NONE if total is None else source
            )
        )
    _logger.debug("hub annual %s: %d types, %d labs", year, len(rows_out), len(lab_rows))
    return HubAnnualReport(
        year=year,
        types=rows_out,
        labs=lab_rows,
        inspections=inspection_report(Inspections(hub), year),
    )


def _profile_source(as_of: date | None) -> Source:
    """The lab's profile at the hub (``hub lab-profile --paper-total``) as a figure's source."""
    if as_of is None:
        return Source("hồ sơ tổ chức trên hub", "the lab's profile at the hub")
    return Source(
        f"hồ sơ tổ chức trên hub, tính đến {as_of.isoformat()}",
        f"the lab's profile at the hub, as of {as_of.isoformat()}",
    )


def _percent(share: float | None) -> str:
    return NOT_REPORTED if share is None else f"{share * 100:.1f} %"


def _value(value: int | None) -> int | str:
    return NOT_REPORTED if value is None else value


def write_xlsx(report: HubAnnualReport, path: Path) -> None:
    """Write `report` to `path` as XLSX: a sheet per part, Vietnamese then English headings;
    a figure without data reads `NOT_REPORTED`, a hand field is blank beside `HAND`."""
    from io import BytesIO

    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    demand = book.active
    demand.title = "Dap ung nhu cau"
    demand.append(
        [
            "Mã loại / Type code",
            "Loại phương tiện đo / Instrument type",
            "Số chứng chỉ cấp trong năm / Certificates issued",
            "Nhu cầu / Demand",
            "Tỷ lệ đáp ứng / Share met",
            "Nguồn nhu cầu / Demand source",
            "Nguồn số cấp / Issued source",
        ]
    )
    for t in report.types:
        demand.append(
            [
                t.code,
                t.label,
                t.issued,
                _value(t.demand),
                _percent(t.share),
                str(t.demand_source),
                str(PUSHED),
            ]
        )
    labs = book.create_sheet("So hoa")
    labs.append(
        [
            "Mã tổ chức / Lab code",
            "Tên / Name",
            "Bản điện tử của chứng chỉ giấy / Digitised copies",
            "Tổng số chứng chỉ giấy / Paper archive",
            "Tiến độ / Progress",
            f"Mục tiêu {report.target_year} / Target {report.target_year}",
            "Nguồn tổng số giấy / Paper total source",
        ]
    )
    for lab in report.labs:
        labs.append(
            [
                lab.code,
                lab.name,
                lab.digitised,
                _value(lab.paper_total),
                _percent(lab.share),
                "100 %",
                str(lab.paper_source),
            ]
        )
    insp = book.create_sheet("Kiem tra")
    i = report.inspections
    insp.append(["Chỉ tiêu / Indicator", "Giá trị / Value", "Nguồn / Source"])
    src = "các đợt kiểm tra ghi trên hệ thống / inspection rounds recorded at the hub"
    insp.append(["Số đợt kiểm tra / Rounds", i.rounds if i else NOT_REPORTED, src])
    insp.append(["Số lượt kiểm tra / Instruments checked", i.checks if i else NOT_REPORTED, src])
    insp.append(["Số vi phạm / Violations", i.violations if i else NOT_REPORTED, src])
    for tally in i.by_found if i else []:
        insp.append([tally.label, tally.violations or tally.checks, src])
    hand = book.create_sheet("Dien tay")
    hand.append(["Chỉ tiêu / Indicator", "Giá trị / Value", "Ghi chú / Note"])
    for label in _HAND_FIELDS:
        hand.append([label, None, HAND])
    for sheet in book.worksheets:
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 40
        sheet.column_dimensions["B"].width = 40
    no_formulas(book)  # names and places others typed stay text
    buffer = BytesIO()
    book.save(buffer)
    write_atomic(path, buffer.getvalue())


_HAND_FIELDS = (
    "Số lớp đào tạo, bồi dưỡng về đo lường / Training courses on metrology",
    "Số người được đào tạo / People trained",
    "Số doanh nghiệp được hỗ trợ / Enterprises supported",
    "Nội dung hỗ trợ doanh nghiệp / Enterprise support given",
)


def render_pdf(
    report: HubAnnualReport,
    *,
    department: Department,
    sealer: Any | None = None,
    issued_on: date | None = None,
    template_dir: Path | None = None,
) -> bytes:
    """`report` as PDF (Vietnamese first, embedded fonts, page x of y), signed by `sealer` (a
    `sign.Sealer` holding the Department's key) when given. Raises `TemplateError`,
    `SigningError`, and `ConfigError` when the signing certificate names no one."""
    settings = department.settings(template_dir)
    signer_name = sealer.signer_name if sealer is not None else ""
    context = {
        "r": report,
        "issued_on": issued_on or local_date(datetime.now(UTC)),
        "signer_name": signer_name,
        "not_reported": NOT_REPORTED,
        "hand": HAND,
        "hand_fields": [label.split(" / ", 1) for label in _HAND_FIELDS],
        "percent": _percent,
        "pushed": PUSHED,
        "inspections_source": Source(
            "các đợt kiểm tra ghi trên hệ thống", "inspection rounds recorded at the hub"
        ),
    }
    pdf = render_report("hub_annual.rml.j2", context, settings)
    return department.seal(
        pdf, sealer, reason=f"Báo cáo năm {report.year} của Sở / Annual report {report.year}"
    )
