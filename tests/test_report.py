"""Reports for the authorities (issue 10): figures, PDF (charts, Vietnamese text, signature,
checkpoint), XLSX, the empty year and the activity report, on SQLite and PostgreSQL.

The ledger is generated with known contents: a handful of certificates through the real issue
path (render, sign, ledger), revocation, amendment, a failed verification and a digitised
paper certificate; then rows written directly with SQL (with correct Merkle leaves) for
several labs and months, failed verifications and the register. Every expected figure is
computed here from the generating lists, not from the report's queries.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from PIL import Image

from certissuer import merkle
from certissuer.config import Settings
from certissuer.errors import IssueRefused, LedgerError, TemplateError
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import (
    CertificateEntry,
    FailedVerification,
    Ledger,
    LedgerEvent,
    LogHead,
    LogLeaf,
    leaf_data,
)
from certissuer.model import PaperCopy, ScanRef, parse_certificate
from certissuer.registry import Register
from certissuer.render import sanitize_rml

from .conftest import SAMPLES, lab_settings, load_json

YEAR = 2026
UNTIL = date(2026, 11, 20)
ICT = timedelta(hours=7)

# (lab, kind, month, instrument name or quantity) of the certificates written with SQL
VER_NAMES = {
    "can-ban": "Cân bàn / Platform scale",
    "cong-to-1p-dien-tu": "Công tơ điện xoay chiều 1 pha kiểu điện tử / Electricity meter",
    "taximet": "Taximet / Taximeter",
}
CAL_QUANTITIES = ["Áp suất / Pressure", "Nhiệt độ / Temperature"]
BULK: list[tuple[str, str, int, str]] = [
    (lab, kind, month, key)
    for i, (lab, month) in enumerate(
        [(lab, m) for lab in ("T01", "T02") for m in (1, 2, 2, 5, 7, 9, 10, 11)]
    )
    for kind, key in (
        [("verification", list(VER_NAMES)[i % 3])]
        + ([("calibration", CAL_QUANTITIES[i % 2])] if i % 3 != 1 else [])
    )
]
BULK_OUTSIDE = [
    ("T02", "verification", date(2025, 12, 30)),
    ("T01", "verification", UNTIL + timedelta(days=3)),
]
BULK_FAILED = [
    ("T01", "can-ban", 3),
    ("T02", "can-ban", 6),
    ("T02", "taximet", 8),
    ("T02", "taximet", 8),
]
OWNERS = [("O1", "doanh nghiệp", "Cao Lãnh"), ("O2", "chợ", "Sa Đéc"), ("O3", "", "Hồng Ngự")]
# (owner, serial, valid_until): overdue on UNTIL when valid_until < UNTIL
INSTRUMENTS = [
    ("O1", "I1", date(2026, 1, 31)),
    ("O1", "I2", date(2027, 5, 1)),
    ("O2", "I3", date(2026, 11, 19)),
    ("O2", "I4", date(2026, 11, 20)),
    ("O2", "I5", date(2025, 3, 3)),
    ("O3", "I6", date(2026, 2, 2)),
]
STANDARDS = [("S1", date(2026, 10, 1)), ("S2", date(2027, 1, 15)), ("S3", date(2028, 1, 1))]


@dataclass
class World:
    """What the generator made, and what every figure should be."""

    ledger: Ledger
    settings: Settings
    issuer: Issuer
    issued: dict[str, list[int]] = field(default_factory=dict)
    """kind -> count per month 1..11 (issue dates in the period)."""
    passed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    quantities: Counter[str] = field(default_factory=Counter)
    revoked: int = 0
    amended: int = 0
    digitised: int = 0
    digitised_before: int = 0
    electronic_before: int = 0
    labs: dict[str, Counter[str]] = field(default_factory=dict)
    numbers: list[str] = field(default_factory=list)


def _png(path: Path) -> ScanRef:
    image = Image.new("RGB", (200, 280), "white")
    image.paste((30, 30, 30), (20, 20, 180, 60))
    image.save(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ScanRef(file_name=path.name, path=str(path), sha256=sha, pages=1)


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _bulk_entry(n: int, lab: str, kind: str, day: date, name: str, data: dict[str, Any]) -> Any:
    series = {"verification": "KĐ", "calibration": "HC"}[kind] + lab
    return CertificateEntry(
        number=f"{series}-{day.year}-{n:06d}",
        lab_code=lab,
        series=series,
        year=day.year,
        seq=n,
        kind=kind,
        ref=f"bulk-{n}",
        instrument_name=name,
        instrument_model="M",
        instrument_serial=f"SN{n}",
        customer_name="Khách hàng",
        work_date=day,
        issue_date=day,
        valid_until=day + timedelta(days=365),
        issued_at=_at(day) - ICT,
        data_digest="0" * 64,
        data_json=json.dumps(data, ensure_ascii=False),
        token="t",
        pdf_sha256=hashlib.sha256(f"bulk{n}".encode()).hexdigest(),
        pdf_path=None,
    )


def append_bulk(ledger: Ledger, entries: list[CertificateEntry]) -> None:
    """Write issued entries with their events and correct Merkle leaves (no PDF, no signing)."""
    with ledger.session() as s:
        head = s.get(LogHead, 1)
        assert head is not None
        for entry in entries:
            s.add(entry)
            ev = LedgerEvent(
                number=entry.number, kind="issued", at=entry.issued_at, pdf_sha256=entry.pdf_sha256
            )
            s.add(ev)
            s.flush()
            assert ev.id is not None
            leaf = merkle.leaf_hash(leaf_data(ev, entry)).hex()
            s.add(LogLeaf(idx=head.size, event_id=ev.id, leaf_hash=leaf))
            head.size += 1
        s.add(head)
        s.commit()


def build_world(url: str, tmp: Path, pki: Any, sealer: Any, renderer: Any) -> World:
    """Generate the ledger and register with known contents (see the module docstring)."""
    settings = lab_settings(
        pki,
        ledger=url,
        lab_name_vi="Trung tâm Kỹ thuật Đồng Tháp",
        lab_name_en="Dong Thap Technical Centre",
    )
    ledger = Ledger.open(url)
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp / "out",
        renderer=renderer,
    )
    register = Register(ledger.engine, lab_code="T01")
    register.seed_types()
    w = World(ledger, settings, issuer)
    months = len(range(1, UNTIL.month + 1))
    w.issued = {"verification": [0] * months, "calibration": [0] * months}
    w.labs = {"T01": Counter(), "T02": Counter()}

    def count(kind: str, day: date, lab: str = "T01") -> None:
        w.issued[kind][day.month - 1] += 1
        w.labs[lab][kind] += 1

    # -- the real issue path -----------------------------------------------------------------
    ver = load_json(SAMPLES / "verification.json")
    cal = load_json(SAMPLES / "calibration.json")
    # The work is done before it is issued (the checks of issue 16): the sample's dates are
    # moved to the first issue date below, and the valid-until date is computed from them.
    del ver["valid_until"]
    ver["verification_date"] = "2026-03-10"
    cal["received"] = cal["calibrated"] = "2026-03-12"
    v1 = issuer.issue(
        parse_certificate({**ver, "ref": "V1", "stamp_number": "ĐT-26 0000101"}),
        now=_at(date(2026, 3, 10)),
    )
    count("verification", date(2026, 3, 10))
    w.passed["cot-do-xang-dau"] += 1
    issuer.issue(parse_certificate({**cal, "ref": "C1"}), now=_at(date(2026, 3, 12)))
    count("calibration", date(2026, 3, 12))
    w.quantities["Khối lượng / Mass"] += 1
    c2 = issuer.issue(parse_certificate({**cal, "ref": "C2"}), now=_at(date(2026, 5, 5)))
    count("calibration", date(2026, 5, 5))
    w.quantities["Khối lượng / Mass"] += 1
    ledger.revoke(c2.number, reason="chuẩn hết hạn / standard expired", at=_at(date(2026, 6, 1)))
    w.revoked += 1
    w.labs["T01"]["revoked"] += 1
    v2 = issuer.issue(
        parse_certificate({**ver, "ref": "V2", "stamp_number": "ĐT-26 0000102"}),
        now=_at(date(2026, 4, 2)),
    )
    count("verification", date(2026, 4, 2))
    w.passed["cot-do-xang-dau"] += 1
    issuer.amend(
        v2.number,
        parse_certificate({**ver, "ref": "V2", "stamp_number": "ĐT-26 0000102"}),
        reason="sai số hiệu",
        now=_at(date(2026, 7, 1)),
    )
    count("verification", date(2026, 7, 1))
    w.passed["cot-do-xang-dau"] += 1
    w.amended += 1
    w.labs["T01"]["amended"] += 1
    bad = copy.deepcopy(ver)
    bad["ref"] = "F1"
    bad["checks"][0]["error"] = "0.5"
    with pytest.raises(IssueRefused):
        issuer.issue(parse_certificate(bad), now=_at(date(2026, 8, 8)))
    w.failed["cot-do-xang-dau"] += 1
    w.labs["T01"]["failed"] += 1
    scan = _png(tmp / "scan1.png")
    paper = PaperCopy(
        ref="paper:G-123",
        paper_number="G-123",
        paper_kind="verification",
        instrument="Cân bàn / Platform scale",
        serial="P-1",
        owner="Chợ Cao Lãnh",
        paper_issue_date=date(2019, 5, 1),
        scans=[scan],
    )
    issuer.issue(paper, now=_at(date(2026, 9, 9)))
    w.digitised += 1
    w.labs["T01"]["digitised"] += 1
    w.numbers = [v1.number, c2.number, v2.number]

    # -- rows written with SQL -------------------------------------------------------------------
    entries = []
    for n, (lab, kind, month, key) in enumerate(BULK, 1):
        day = date(YEAR, month, 10 + n % 10)
        if kind == "verification":
            entries.append(_bulk_entry(n, lab, kind, day, VER_NAMES[key], {}))
            w.passed[key] += 1
        else:
            name = "Áp kế chuẩn / Reference gauge"
            entries.append(_bulk_entry(n, lab, kind, day, name, {"results": [{"quantity": key}]}))
            w.quantities[key] += 1
        count(kind, day, lab)
    for n, (lab, kind, day) in enumerate(BULK_OUTSIDE, 500):
        entries.append(_bulk_entry(n, lab, kind, day, VER_NAMES["can-ban"], {}))
        if day < date(YEAR, 1, 1):
            w.electronic_before += 1
    append_bulk(ledger, entries)
    with ledger.session() as s:
        for i, (lab, type_code, month) in enumerate(BULK_FAILED):
            data = {"instrument": {"name": VER_NAMES[type_code]}}
            s.add(
                FailedVerification(
                    lab_code=lab,
                    ref=f"bf{i}",
                    recorded_at=_at(date(YEAR, month, 3)),
                    instrument_serial=f"F{i}",
                    data_digest="0" * 64,
                    data_json=json.dumps(data),
                )
            )
            w.failed[type_code] += 1
            w.labs[lab]["failed"] += 1
        s.commit()

    # -- the register --------------------------------------------------------------------------
    for code, kind, _place in OWNERS:
        register.add("owner", {"code": code, "name": f"Chủ {code}", "kind": kind})
    for owner, serial, valid in INSTRUMENTS:
        place = next(p for c, _, p in OWNERS if c == owner)
        register.add(
            "instrument",
            {
                "owner_code": owner,
                "type_code": "can-ban",
                "serial": serial,
                "place_of_use": place,
                "valid_until": valid.isoformat(),
            },
        )
    for code, due in STANDARDS:
        register.add(
            "standard",
            {
                "code": code,
                "name": f"Chuẩn {code}",
                "certificate_number": f"HC-{code}",
                "calibration_due": due.isoformat(),
            },
        )
    issuer.checkpoint(now=_at(date(2026, 11, 20)))
    # an event after the checkpoint: not counted
    append_bulk(
        ledger,
        [_bulk_entry(900, "T01", "verification", date(2026, 11, 1), VER_NAMES["taximet"], {})],
    )
    return w


@pytest.fixture
def world(any_ledger_url: str, tmp_path: Path, pki: Any, sealer: Any, renderer: Any) -> World:
    return build_world(any_ledger_url, tmp_path, pki, sealer, renderer)


def _sheet(path: Path, name: str) -> list[dict[str, Any]]:
    wb = load_workbook(path, read_only=True)
    rows = list(wb[name].iter_rows(values_only=True))
    wb.close()
    header = [str(h) for h in rows[0]]
    return [dict(zip(header, r, strict=True)) for r in rows[1:]]


def test_every_xlsx_figure_equals_the_generated_counts(world: World, tmp_path: Path) -> None:
    from certissuer.report import annual_report, write_annual_xlsx

    data = annual_report(world.ledger.engine, year=YEAR, until=UNTIL, paper_total=40)
    out = tmp_path / "r.xlsx"
    write_annual_xlsx(data, out)
    summary = {r["figure"]: r["value"] for r in _sheet(out, "summary")}
    cp = world.ledger.latest_checkpoint()
    assert cp is not None
    assert summary["checkpoint_tree_size"] == cp.tree_size
    assert summary["checkpoint_root"] == cp.root_hash
    assert summary["log_size"] == cp.tree_size + 1  # the event after the checkpoint
    assert summary["issued_verification"] == sum(world.issued["verification"])
    assert summary["issued_calibration"] == sum(world.issued["calibration"])
    assert summary["verification_failed"] == sum(world.failed.values())
    assert summary["revoked"] == world.revoked == 1
    assert summary["amended"] == world.amended == 1
    assert summary["digitised_in_period"] == world.digitised == 1
    overdue = [i for i in INSTRUMENTS if i[2] < UNTIL]
    assert summary["instruments_overdue"] == len(overdue) == 4
    # the cột đo verified through the real path are in the register too (issue 8 records them)
    assert summary["instruments_registered"] >= len(INSTRUMENTS)
    assert summary["standards_due"] == sum(1 for _, d in STANDARDS if d <= UNTIL + timedelta(90))
    assert summary["empty"] == "no"

    by_month = _sheet(out, "issued_by_month")
    assert [r["month"] for r in by_month] == list(range(1, 12))
    assert [r["verification"] for r in by_month] == world.issued["verification"]
    assert [r["calibration"] for r in by_month] == world.issued["calibration"]

    types = {
        r["type_code"]: (r["passed"], r["failed"]) for r in _sheet(out, "verification_by_type")
    }
    expected = {k: (world.passed[k], world.failed[k]) for k in world.passed | world.failed}
    assert types == expected
    quantities = {r["quantity"]: r["certificates"] for r in _sheet(out, "calibration_by_quantity")}
    assert quantities == dict(world.quantities)

    events = _sheet(out, "revocations_amendments")
    assert sum(r["revoked"] for r in events if r["kind"] == "calibration") == 1
    assert [r["month"] for r in events if r["revoked"]] == [6]
    assert [(r["kind"], r["month"]) for r in events if r["amended"]] == [("verification", 7)]

    groups = {
        (r["owner_kind"], r["place_of_use"]): r["instruments"]
        for r in _sheet(out, "overdue_instruments")
    }
    want: Counter[tuple[str, str]] = Counter()
    for owner, _, _valid in overdue:
        _, kind, place = next(o for o in OWNERS if o[0] == owner)
        want[(kind or "(chưa phân loại / unclassified)", place)] += 1
    assert groups == dict(want)

    due = _sheet(out, "standards_due")
    assert [(r["code"], r["status"]) for r in due] == [("S1", "overdue"), ("S2", "due")]

    dig = _sheet(out, "digitisation")
    electronic, running = [], world.electronic_before
    for i in range(11):
        running += world.issued["verification"][i] + world.issued["calibration"][i]
        electronic.append(running)
    assert [r["electronic_cumulative"] for r in dig] == electronic
    assert [r["digitised_cumulative"] for r in dig] == [0] * 8 + [1, 1, 1]
    assert dig[0]["paper_total"] == 40 and dig[0]["target_year"] == 2030

    labs = {r["lab_code"]: r for r in _sheet(out, "labs")}
    assert set(labs) == {"T01", "T02"}
    for code, counts in world.labs.items():
        for column in ("verification", "calibration", "failed", "revoked", "amended", "digitised"):
            assert labs[code][column] == counts[column], (code, column)


def _page_images(pdf: Path, tmp: Path) -> list[Image.Image]:
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp / "pg")], check=True)
    return [Image.open(p).convert("L") for p in sorted(tmp.glob("pg-*.png"))]


def _ink(image: Image.Image) -> float:
    """Share of pixels that are not white."""
    histogram = image.histogram()
    return 1 - sum(histogram[240:]) / sum(histogram)


def _colour_pixels(pdf: Path, tmp: Path, rgb: tuple[int, int, int]) -> int:
    """Pixels close to a chart colour, over all pages (text is black or grey, charts are not)."""
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp / "c")], check=True)
    total = 0
    for path in tmp.glob("c-*.png"):
        colours = Image.open(path).convert("RGB").getcolors(maxcolors=1 << 24) or []
        for n, (r, g, b) in colours:
            if abs(r - rgb[0]) + abs(g - rgb[1]) + abs(b - rgb[2]) < 60:
                total += n
    return total


def test_pdf_has_charts_vietnamese_text_signature_and_checkpoint(
    world: World, tmp_path: Path, pki: Any, sealer: Any
) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    from certissuer.report import annual_report, render_annual_pdf, sign_report

    data = annual_report(world.ledger.engine, year=YEAR, until=UNTIL, paper_total=40)
    pdf = render_annual_pdf(data, settings=world.settings, signer_name=sealer.signer_name)
    signed = sign_report(
        pdf,
        sealer,
        data.checkpoint,
        title="Báo cáo",
        location="Đồng Tháp",
        name_on_page=sealer.signer_name,
    )
    out = tmp_path / "report.pdf"
    out.write_bytes(signed)

    text = subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout
    for phrase in (
        "BÁO CÁO KẾT QUẢ HOẠT ĐỘNG ĐO LƯỜNG NĂM 2026",
        "ANNUAL MEASUREMENT REPORT 2026",
        "Kết quả kiểm định theo loại phương tiện đo",
        "Tiến độ số hóa",
        "Chuẩn đo lường đến hạn hiệu chuẩn",
        "Cột đo xăng dầu",
        "Trang 1/",
    ):
        assert phrase in text, phrase
    cp = world.ledger.latest_checkpoint()
    assert cp is not None
    assert cp.root_hash in text.replace(" ", "")
    assert f"Tree size: {cp.tree_size}" in text

    # charts: each chart colour is drawn (bars, pie slices, lines), and the chart pages have ink
    for colour in ((0x1F, 0x3B, 0x63), (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0xF9, 0xA8, 0x25)):
        assert _colour_pixels(out, tmp_path, colour) > 30, colour
    pages = _page_images(out, tmp_path)
    assert len(pages) >= 2
    first = pages[0]
    w, h = first.size
    # the monthly chart sits in the lower half of page 1
    assert _ink(first.crop((0, h // 2, w, h))) > 0.05

    reader = PdfFileReader(io.BytesIO(signed))
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(pki.ca_cert))])
    status = validate_pdf_signature(reader.embedded_signatures[0], ctx)
    assert status.bottom_line, status.pretty_print_details()
    info = reader.trailer["/Info"]
    assert str(info["/CertissuerCheckpoint"]) == f"{cp.tree_size} {cp.root_hash}"


def test_empty_year_says_so(world: World, tmp_path: Path) -> None:
    from certissuer.report import annual_report, render_annual_pdf, write_annual_xlsx

    data = annual_report(world.ledger.engine, year=2024)
    assert data.empty and data.issued_total == 0 and data.verification_results == ()
    pdf = tmp_path / "empty.pdf"
    pdf.write_bytes(render_annual_pdf(data, settings=world.settings, signer_name="A"))
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "sổ cấp không ghi nhận giấy chứng nhận" in " ".join(text.split())
    assert "Giấy chứng nhận đã cấp theo tháng" not in text  # no empty chart section
    # no chart colours on an empty year: green, red and orange are only drawn by charts
    for colour in ((0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0xF9, 0xA8, 0x25)):
        assert _colour_pixels(pdf, tmp_path, colour) == 0, colour
    write_annual_xlsx(data, tmp_path / "e.xlsx")
    summary = {r["figure"]: r["value"] for r in _sheet(tmp_path / "e.xlsx", "summary")}
    assert summary["empty"] == "yes" and summary["issued_total"] == 0


def test_activity_report_counts_and_marks_hand_fields(world: World, tmp_path: Path) -> None:
    from certissuer.report import HAND, activity_report, render_activity_pdf, write_activity_xlsx

    data = activity_report(world.ledger.engine, year=YEAR, lab_code="T01", settings=world.settings)
    t01 = [b for b in BULK if b[0] == "T01"]
    cot = next(x for x in data.lines if x.type_code == "cot-do-xang-dau")
    assert (cot.verified, cot.failed) == (3, 1)
    # the one dated after UNTIL counts (the form covers the whole year); the one written
    # after the checkpoint does not
    late = sum(1 for lab, _, day in BULK_OUTSIDE if lab == "T01" and day.year == YEAR)
    assert late == 1
    assert data.verified_total == 3 + late + sum(1 for b in t01 if b[1] == "verification")
    assert data.calibrated_total == 2 + sum(1 for b in t01 if b[1] == "calibration")
    assert data.failed_total == 1 + sum(1 for f in BULK_FAILED if f[0] == "T01")
    assert (data.revoked, data.amended) == (1, 1)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(render_activity_pdf(data, settings=world.settings, signer_name="B"))
    text = " ".join(
        subprocess.run(
            ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert "BÁO CÁO TÌNH HÌNH HOẠT ĐỘNG KIỂM ĐỊNH, HIỆU CHUẨN" in text
    assert "Mẫu 5.BCHĐ" in text
    assert text.count("điền tay") >= 3 and HAND.split(" / ")[0] in text
    # The place-and-date line is the day the report is signed, not 31 December (issue 19).
    from certissuer._vn import local_date

    today = local_date(datetime.now(UTC))
    assert f"ngày {today.day:02d} tháng {today.month:02d} năm {today.year}" in text
    if today != data.until:
        until = data.until
        assert f"ngày {until.day:02d} tháng {until.month:02d} năm {until.year}" not in text
    write_activity_xlsx(data, tmp_path / "a.xlsx")
    summary = {r["figure"]: r["value"] for r in _sheet(tmp_path / "a.xlsx", "summary")}
    assert summary["verified"] == data.verified_total


def test_report_without_checkpoint_is_refused(tmp_path: Path) -> None:
    from certissuer.report import annual_report

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}")
    with pytest.raises(LedgerError, match="no signed checkpoint"):
        annual_report(ledger.engine, year=YEAR)


def test_chart_elements_cannot_reach_files_or_code(tmp_path: Path) -> None:
    base = (
        '<document><story><illustration width="100" height="100">{}</illustration>'
        "</story></document>"
    )
    allowed = [tmp_path]
    ok = sanitize_rml(
        base.format(
            '<barChart dx="0" dy="0" dwidth="90" dheight="90"><data>'
            "<series>1 2</series></data></barChart>"
        ),
        allowed_dirs=allowed,
    )
    assert "barChart" in ok
    refused = [
        '<image file="/etc/passwd.png" x="0" y="0"/>',  # outside the allowed folders
        '<image file="http://example.invalid/x.png" x="0" y="0"/>',
        '<image file="../secret.png" x="0" y="0"/>',
        '<barChart dx="0" dy="0" dwidth="9" dheight="9"><valueAxis labelTextFormat="os.system"/>'
        "<data><series>1</series></data></barChart>",  # an ObjectRef: would import and call
        "<plugInGraphic module='os' function='system'>ls</plugInGraphic>",
        '<spiderChart dx="0" dy="0" dwidth="9" dheight="9"/>',
        '<barChart dx="0" dy="0" dwidth="9" dheight="9" fileName="/etc/passwd"/>',
    ]
    for snippet in refused:
        with pytest.raises(TemplateError):
            sanitize_rml(base.format(snippet), allowed_dirs=allowed)


@pytest.mark.parametrize("any_ledger_url", ["sqlite"], indirect=True)
def test_cli_writes_signed_reports_whole_and_refuses_bad_options(
    world: World, tmp_path: Path, pki: Any
) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from typer.testing import CliRunner

    from certissuer.cli import app

    from .conftest import PASSPHRASE

    config = tmp_path / "lab.toml"
    config.write_text(
        f'[lab]\ncode = "T01"\nplace = "Đồng Tháp"\n'
        f'[signing]\npkcs12 = "{pki.signer_p12}"\ntrust_roots = ["{pki.ca_cert}"]\n'
        f'[token]\nkey = "{pki.token_key}"\nurl_base = "https://verify.test.invalid"\n'
        f'[ledger]\nurl = "{world.settings.ledger_url}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    out = tmp_path / "reports"
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(pki.ca_cert))])
    for command, extra in (("annual", ["--until", "2026-11-20"]), ("activity", [])):
        pdf, xlsx = out / f"{command}.pdf", out / f"{command}.xlsx"
        result = runner.invoke(
            app,
            ["--config", str(config), "report", command, "--year", str(YEAR), *extra,
             "--checkpoint", "--out", str(pdf), "--xlsx", str(xlsx)],
            env=env,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        printed = "".join(result.output.split())  # the console wraps long paths
        assert f"wrote{pdf}" in printed and f"wrote{xlsx}" in printed
        (sig,) = PdfFileReader(io.BytesIO(pdf.read_bytes())).embedded_signatures
        assert validate_pdf_signature(sig, ctx).bottom_line
        assert load_workbook(xlsx, read_only=True).sheetnames
    assert sorted(p.name for p in out.iterdir()) == [
        "activity.pdf",
        "activity.xlsx",
        "annual.pdf",
        "annual.xlsx",
    ]  # fmt: skip  (no temporary file left beside them)
    assert PASSPHRASE.decode() not in result.output

    bad = runner.invoke(
        app,
        ["--config", str(config), "report", "annual", "--year", "2026", "--until", "20/11/2026",
         "--out", str(out / "x.pdf")],
        env=env,
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "expectedadateYYYY-MM-DD,got'20/11/2026'" in "".join(bad.output.split())
    nothing = runner.invoke(
        app, ["--config", str(config), "report", "activity", "--year", "2026"], env=env
    )
    assert nothing.exit_code == 2 and "nothing to write" in nothing.output
    assert not (out / "x.pdf").exists()


def test_types_are_named_from_the_cycle_table_while_the_register_is_empty(
    issuer: Any, ledger: Ledger, ver_data: dict[str, Any]
) -> None:
    """With no type in the register, the report matches instrument names against the cycle
    table the issuing checks use, not "(khác / other)" for every one (issue 19)."""
    from certissuer.report import annual_report
    from certissuer.report.queries import OTHER_TYPE

    issuer.issue(parse_certificate(ver_data), now=_at(date(2026, 11, 26)))
    bad = copy.deepcopy(ver_data)
    bad["ref"] = "F-types"
    bad["checks"][0]["error"] = "0.5"
    with pytest.raises(IssueRefused):
        issuer.issue(parse_certificate(bad), now=_at(date(2026, 11, 26)))
    issuer.checkpoint(now=_at(date(2026, 11, 27)))
    data = annual_report(ledger.engine, year=YEAR, until=date(2026, 11, 30))
    assert [(t.type_code, t.passed, t.failed) for t in data.verification_results] == [
        ("cot-do-xang-dau", 1, 1)
    ]
    assert data.verification_results[0].type_name == "Cột đo xăng dầu / Fuel dispenser"
    assert OTHER_TYPE not in {t.type_code for t in data.verification_results}
