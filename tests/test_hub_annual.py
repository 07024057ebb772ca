"""The hub's annual report (issue 22, the plan's indicators): two labs push, an inspection
round records violations, and the report's figures (XLSX and PDF text) equal what was pushed
and recorded; a figure without data reads "not reported", never 0; the PDF is signed with the
Department's key and validates."""

from __future__ import annotations

import io
import json
import re
import subprocess
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlmodel import select
from typer.testing import CliRunner

from certissuer.cli import app as cli_app
from certissuer.errors import ConfigError, InputError
from certissuer.hub.annual import (
    HAND,
    NOT_REPORTED,
    hub_annual_report,
    read_demand,
    render_pdf,
    write_xlsx,
)
from certissuer.hub.inspection_report import Department
from certissuer.hub.inspections import Inspections
from certissuer.hub.tables import HubRecord
from certissuer.keys import KeyPaths
from certissuer.model import PaperCopy
from certissuer.sign import Sealer
from certissuer.token import TokenKey

from . import test_hub
from .conftest import PASSPHRASE
from .test_hub import TODAY, World
from .test_hub_catalogue import SERIAL_X, _province
from .test_hub_inspections import dept_pki  # noqa: F401  (the Department's trial key)
from .test_report import _png

world = test_hub.world
"""Two labs with their own ledgers and keys, registered at one hub (`tests.test_hub`)."""

YEAR = 2026


def _digitise(w: World, tmp_path: Path, n: int) -> None:
    """Lab A digitises `n` paper certificates (electronic copies with their scans)."""
    for i in range(n):
        scan = _png(tmp_path / f"scan{i}.png")
        paper = PaperCopy(
            ref=f"paper:G-{i}",
            paper_number=f"G-{i}",
            paper_kind="verification",
            instrument="Cân bàn / Platform scale",
            serial=f"P-{i}",
            owner="Chợ Cao Lãnh",
            paper_issue_date=date(2019, 5, 1),
            scans=[scan],
        )
        w.a.issuer.issue(paper, now=datetime(2026, 9, 9, 3, tzinfo=UTC))


def _setup(w: World, tmp_path: Path) -> int:
    """_province (fuel dispensers X, Y at lab A in 2025; X, Z at lab B in 2026), two digitised
    paper certificates at lab A, a balance calibrated at lab A, all pushed; then a round of
    three checks, two with a violation. Returns the round's id."""
    _province(w)  # pushes both labs
    _digitise(w, tmp_path, 2)
    w.a.issue("A-CAL")  # an analytical balance, calibrated
    w.push(w.a)
    rounds = Inspections(w.hub)
    rid = rounds.open_round("Chợ Cao Lãnh", date(YEAR, 11, 28), ["An", "Bình"]).round.id
    assert rid is not None
    bx = w.b.numbers["B-X"]
    rounds.add_check(rid, number=bx, serial=SERIAL_X, lab_code="DT02", found="none", today=TODAY)
    rounds.add_check(
        rid, number=bx, serial=SERIAL_X, lab_code="DT02", found="stamp_missing", today=TODAY
    )
    rounds.add_check(
        rid,
        number="KĐ-2026-424242",
        serial="Z9",
        found="no_certificate",
        instrument_type="Cột đo xăng dầu",
        today=TODAY,
    )
    return rid


def _expected_demand(w: World) -> Counter[str]:
    """Instruments (one per serial and model, across labs) the pushed registers have due in
    YEAR, by type code: counted from the stored rows, not through the report."""
    due: dict[tuple[str, str], str] = {}
    for code in ("DT01", "DT02"):
        for rec in w.hub.records(code, "instruments"):
            d = json.loads(rec.record_json)
            if str(d.get("valid_until") or "").startswith(f"{YEAR}-") or str(
                d.get("verified_on") or ""
            ).startswith(f"{YEAR}-"):
                due.setdefault((d["serial"], d.get("model") or ""), d["type_code"])
    return Counter(due.values())


def _pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_the_annual_report_counts_what_was_pushed_and_recorded(
    world: World,
    dept_pki: KeyPaths,  # noqa: F811
    tmp_path: Path,
) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    _setup(world, tmp_path)
    demand_csv = tmp_path / "demand.csv"
    demand_csv.write_text("type,count\ncan-phan-tich,4\nCân đồng hồ lò xo,10\n", "utf-8")
    report = hub_annual_report(
        world.hub,
        YEAR,
        demand=read_demand(demand_csv),
        demand_file="demand.csv",
        paper_totals={"DT01": 8},
        paper_file="paper.csv",
    )
    by = {t.code: t for t in report.types}

    # fuel dispensers: B-X and B-Z issued in 2026 (A-X, A-Y in 2025); X, Y, Z due in 2026
    assert by["cot-do-xang-dau"].issued == 2
    expected = _expected_demand(world)
    assert expected["cot-do-xang-dau"] == 3
    assert by["cot-do-xang-dau"].demand == 3
    assert by["cot-do-xang-dau"].demand_source.en == "the labs' instrument registers"
    # the balance: one certificate; the demand from the register if it holds it, else the CSV
    assert by["can-phan-tich"].issued == 1
    if expected["can-phan-tich"]:
        assert by["can-phan-tich"].demand == expected["can-phan-tich"]
    else:
        assert by["can-phan-tich"].demand == 4
        assert by["can-phan-tich"].demand_source.en == "file demand.csv"
    # a type only the CSV names: nothing issued, its demand from the file
    assert (by["can-dong-ho-lo-xo"].issued, by["can-dong-ho-lo-xo"].demand) == (0, 10)
    # the copies of paper certificates are not issued certificates
    assert report.issued_total == 3

    # digitisation: lab A pushed two copies of eight paper certificates; lab B declared none
    labs = {lab.code: lab for lab in report.labs}
    assert (labs["DT01"].digitised, labs["DT01"].paper_total, labs["DT01"].share) == (2, 8, 0.25)
    assert (labs["DT02"].digitised, labs["DT02"].paper_total, labs["DT02"].share) == (0, None, None)

    assert report.inspections is not None
    assert (report.inspections.rounds, report.inspections.checks) == (1, 3)
    assert report.inspections.violations == 2

    xlsx = tmp_path / "hub-2026.xlsx"
    write_xlsx(report, xlsx)
    book = load_workbook(xlsx)
    demand_rows = {r[0]: r for r in book["Dap ung nhu cau"].iter_rows(min_row=2, values_only=True)}
    assert demand_rows["cot-do-xang-dau"][2:5] == (2, 3, "66.7 %")
    assert demand_rows["can-dong-ho-lo-xo"][2:6] == (
        0,
        10,
        "0.0 %",
        "tệp demand.csv / file demand.csv",
    )
    lab_rows = {r[0]: r for r in book["So hoa"].iter_rows(min_row=2, values_only=True)}
    assert lab_rows["DT01"][2:5] == (2, 8, "25.0 %")
    assert lab_rows["DT02"][2:5] == (0, NOT_REPORTED, NOT_REPORTED)  # unknown is not 0
    insp = {r[0]: r[1] for r in book["Kiem tra"].iter_rows(min_row=2, values_only=True)}
    assert insp["Số vi phạm / Violations"] == 2
    assert insp["Số lượt kiểm tra / Instruments checked"] == 3
    hand = list(book["Dien tay"].iter_rows(min_row=2, values_only=True))
    assert hand and all(r[1] is None and r[2] == HAND for r in hand)

    sealer = Sealer.from_pkcs12(dept_pki.signer_p12, PASSPHRASE)
    pdf = render_pdf(
        report,
        department=Department("Sở Khoa học và Công nghệ Đồng Tháp", "Department of S&T"),
        sealer=sealer,
        issued_on=date(2026, 12, 4),
    )
    out = tmp_path / "hub-2026.pdf"
    out.write_bytes(pdf)
    text = _pdf_text(out)
    assert text.index("BÁO CÁO KẾT QUẢ THỰC HIỆN") < text.index("ANNUAL REPORT ON THE")
    assert re.search(r"Cột đo xăng dầu.*\s2\s+3\s+66\.7 %", text), text
    assert re.search(r"DT01 – .*\s2\s+8\s+25\.0 %", text), text
    assert re.search(r"DT02 – Phòng hiệu chuẩn Sa Đéc\s+0\s", text), text
    # lab B's paper total and progress are unknown: "not reported" twice (cells wrap)
    assert text.count("chưa báo cáo") == 2 and "không có dữ liệu / no data" in text
    assert re.search(r"Số lượt có vi phạm\s+2", text)
    assert re.search(r"Số lượt phương tiện đo được kiểm tra\s+3", text)
    assert text.count("điền tay / filled by hand") == 4
    assert "Trần Thị Thanh Tra" in text

    reader = PdfFileReader(io.BytesIO(pdf))
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(dept_pki.ca_cert))])
    status = validate_pdf_signature(reader.embedded_signatures[0], ctx)
    assert status.bottom_line, status.pretty_print_details()
    # a lab's key is not the Department's: the same report signed by it does not validate
    lab_signed = render_pdf(
        report,
        department=Department(),
        sealer=Sealer.from_pkcs12(world.a.keys.signer_p12, PASSPHRASE),
    )
    lab_status = validate_pdf_signature(
        PdfFileReader(io.BytesIO(lab_signed)).embedded_signatures[0], ctx
    )
    assert not lab_status.bottom_line


def test_without_demand_or_paper_totals_figures_say_not_reported(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.a.issue("A-CAL")  # a calibrated balance; whatever the register holds, the CSV is absent
    w.push(w.a)
    # drop the register rows: no instrument is known to be due
    with w.hub.session() as s:
        for rec in s.exec(select(HubRecord)):
            s.delete(rec)
        s.commit()
    report = hub_annual_report(w.hub, YEAR)
    (balance,) = report.types
    assert (balance.issued, balance.demand, balance.share) == (1, None, None)
    assert all(lab.paper_total is None and lab.share is None for lab in report.labs)
    xlsx = tmp_path / "r.xlsx"
    write_xlsx(report, xlsx)
    row = next(load_workbook(xlsx)["Dap ung nhu cau"].iter_rows(min_row=2, values_only=True))
    assert row[2:6] == (1, NOT_REPORTED, NOT_REPORTED, "không có dữ liệu / no data")


def test_bad_demand_and_paper_inputs_name_the_row_and_field(world: World, tmp_path: Path) -> None:
    bad = tmp_path / "demand.csv"
    bad.write_text("type,count\ncot-do-xang-dau,3\ncan-ban,ba\n", "utf-8")
    with pytest.raises(InputError, match=r"demand\.csv, row 3, field 'count': expected a whole"):
        read_demand(bad)
    header = tmp_path / "h.csv"
    header.write_text("loai,so\n", "utf-8")
    with pytest.raises(InputError, match="expected the header 'type,count'"):
        read_demand(header)
    with pytest.raises(ConfigError, match="'máy bay' is no instrument type"):
        hub_annual_report(world.hub, YEAR, demand={"máy bay": 3}, demand_file="d.csv")
    with pytest.raises(ConfigError, match="lab XX99 is not registered"):
        hub_annual_report(world.hub, YEAR, paper_totals={"XX99": 3}, paper_file="p.csv")


def test_cli_writes_the_annual_report(
    world: World,
    any_ledger_url: str,
    dept_pki: KeyPaths,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _setup(world, tmp_path)
    paper = tmp_path / "paper.csv"
    paper.write_text("lab_code,paper_total\nDT01,4\n", "utf-8")
    demand = tmp_path / "nhu-cau.csv"
    demand.write_text("type,count\nCân phân tích,5\n", "utf-8")
    monkeypatch.setenv("CERTISSUER_P12_PASSPHRASE", PASSPHRASE.decode())
    out, xlsx = tmp_path / "r.pdf", tmp_path / "r.xlsx"
    args: list[Any] = ["hub", "report", "annual", "--year", str(YEAR), "--db", any_ledger_url]
    result = CliRunner().invoke(
        cli_app,
        [
            *args,
            "--out",
            str(out),
            "--xlsx",
            str(xlsx),
            "--paper",
            str(paper),
            "--demand",
            str(demand),
            "--pkcs12",
            str(dept_pki.signer_p12),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 certificates issued" in result.output and "2 violations" in result.output
    lab_rows = {
        r[0]: r for r in load_workbook(xlsx)["So hoa"].iter_rows(min_row=2, values_only=True)
    }
    assert lab_rows["DT01"][2:5] == (2, 4, "50.0 %")
    assert lab_rows["DT01"][6] == "tệp paper.csv / file paper.csv"
    assert "50.0 %" in _pdf_text(out)
    types = {r[0]: r for r in load_workbook(xlsx)["Dap ung nhu cau"].iter_rows(values_only=True)}
    assert types["can-phan-tich"][2:6] == (1, 5, "20.0 %", "tệp nhu-cau.csv / file nhu-cau.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("lab_code,paper_total\nDT01,-1\n", "utf-8")
    bad = CliRunner().invoke(cli_app, [*args, "--xlsx", str(xlsx), "--paper", str(wrong)])
    assert bad.exit_code == 2
    assert "wrong.csv, row 2, field 'paper_total': expected a whole number" in bad.output


def test_paper_totals_come_from_the_lab_profile_unless_a_file_gives_them(
    world: World, any_ledger_url: str, tmp_path: Path
) -> None:
    _digitise(world, tmp_path, 3)
    world.push(world.a)
    world.hub.register_lab(
        "DT03", "Phòng thử nghiệm Hồng Ngự", token_keys=[TokenKey.generate().public]
    )
    runner = CliRunner()
    db = ["--db", any_ledger_url]
    for args, said in (
        (["--code", "DT01", "--paper-total", "12", "--paper-as-of", "2026-06-30"],
         "paper archive 12 as of 2026-06-30"),
        (["--code", "DT02", "--paper-total", "5"], "paper archive 5"),
    ):  # fmt: skip
        done = runner.invoke(cli_app, ["hub", "lab-profile", *args, *db])
        assert done.exit_code == 0, done.output
        assert said in done.output.replace("\n", " ")
    undated = runner.invoke(cli_app, ["hub", "lab-profile", "--code", "DT03", "--paper-as-of",
                                      "2026-06-30", *db])  # fmt: skip
    assert undated.exit_code == 3 and "a paper archive date without a paper total" in (
        undated.output.replace("\n", " ")
    )
    bad_day = runner.invoke(cli_app, ["hub", "lab-profile", "--code", "DT01", "--paper-as-of",
                                      "30/06/2026", *db])  # fmt: skip
    assert bad_day.exit_code == 2 and "expected a date YYYY-MM-DD" in bad_day.output

    # independently: the electronic copies of paper certificates in lab A's own ledger
    copies = sum(1 for e in world.a.ledger.entries() if e.kind == "copy")
    assert copies == 3
    report = hub_annual_report(world.hub, YEAR)
    labs = {lab.code: lab for lab in report.labs}
    assert (labs["DT01"].digitised, labs["DT01"].paper_total) == (copies, 12)
    assert labs["DT01"].share == copies / 12
    assert labs["DT01"].paper_source.en == "the lab's profile at the hub, as of 2026-06-30"
    assert labs["DT01"].paper_source.vi == "hồ sơ tổ chức trên hub, tính đến 2026-06-30"
    assert (labs["DT02"].paper_total, labs["DT02"].share) == (5, 0.0)
    assert labs["DT02"].paper_source.en == "the lab's profile at the hub"
    assert (labs["DT03"].paper_total, labs["DT03"].share) == (None, None)  # neither

    # a file given for the report wins, for the labs it names only
    report = hub_annual_report(world.hub, YEAR, paper_totals={"DT01": 6}, paper_file="p.csv")
    labs = {lab.code: lab for lab in report.labs}
    assert (labs["DT01"].paper_total, labs["DT01"].share) == (6, copies / 6)
    assert labs["DT01"].paper_source.en == "file p.csv"
    assert labs["DT02"].paper_total == 5
    assert labs["DT02"].paper_source.en == "the lab's profile at the hub"
    xlsx = tmp_path / "r.xlsx"
    write_xlsx(report, xlsx)
    rows = {r[0]: r for r in load_workbook(xlsx)["So hoa"].iter_rows(min_row=2, values_only=True)}
    assert rows["DT01"][2:5] == (copies, 6, "50.0 %")
    assert rows["DT02"][2:5] == (0, 5, "0.0 %")
    assert rows["DT02"][6] == "hồ sơ tổ chức trên hub / the lab's profile at the hub"
    assert rows["DT03"][3] == NOT_REPORTED and rows["DT03"][4] == NOT_REPORTED
