"""certissuer.render: real renders read back with poppler and zbar, and the RML allowlist.

The PDFs are read the way a person would: pdftotext for the words on each page, pdffonts for
embedded fonts, pdfinfo for the title, and zbarimg on a 150 dpi pdftoppm render for the QR code.
Every escape a template could try (code, files, URLs, entities) must end in a TemplateError
that names the element, the attribute and the line.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import qrcode
from qrcode.constants import ERROR_CORRECT_M

from certissuer.config import Settings
from certissuer.errors import CertissuerError, ConfigError, TemplateError
from certissuer.model import parse_certificate
from certissuer.render import Renderer, _z3c, default_template_dir, qr, qr_png, sanitize_rml

from .conftest import lab_settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ISSUED = date(2026, 11, 27)
QR_URL = "https://kiemdinh.example.vn/v/" + "eyJhbGciOiJFZERTQSJ9" * 9
TOOLS = ("pdftotext", "pdffonts", "pdfinfo", "pdftoppm", "zbarimg")
needs_poppler = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs poppler-utils and zbar-tools (.ci/run installs them)",
)


# -- fixtures and helpers -------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (SAMPLES / name).read_text(encoding="utf-8"), parse_float=Decimal
    )
    return data


@pytest.fixture(scope="module")
def rend() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def lab() -> Settings:
    return lab_settings(
        lab_name_vi="Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp",
        lab_name_en="Dong Thap Technical Centre for Standards, Metrology and Quality",
        lab_address_vi="Số 12, đường 30 Tháng 4, phường Cao Lãnh, tỉnh Đồng Tháp",
        lab_address_en="No. 12, 30 Thang 4 Street, Cao Lanh Ward, Dong Thap Province",
        lab_place="Đồng Tháp",
        lab_accreditation="VILAS 000",
    )


@pytest.fixture
def cal_data() -> dict[str, Any]:
    return _load("calibration.json")


@pytest.fixture
def ver_data() -> dict[str, Any]:
    return _load("verification.json")


def _many_results(data: dict[str, Any], rows: int) -> dict[str, Any]:
    """The calibration sample with `rows` result rows (enough to need several pages)."""
    base = data["results"][0]
    results = [
        {**base, "nominal": str(i), "measured": f"{i}.00347", "uncertainty": "0.0123"}
        for i in range(10, 10 + rows)
    ]
    return {**data, "results": results}


def _pdf(
    rend: Renderer, data: dict[str, Any], lab: Settings, tmp_path: Path, number: str = "HC-1"
) -> Path:
    pdf = rend.render_pdf(
        parse_certificate(data), number=number, issued=ISSUED, qr_url=QR_URL, settings=lab
    )
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return path


def _run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def _pages(path: Path) -> list[str]:
    return [p for p in _run("pdftotext", path, "-").split("\f") if p.strip()]


def _squash(text: str) -> str:
    """`text` without whitespace: table cells wrap, and pdftotext reads them line by line."""
    return "".join(text.split())


# -- real renders ---------------------------------------------------------------------------


@needs_poppler
def test_calibration_pages_carry_title_number_page_x_of_y_and_repeated_header(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    pages = _pages(_pdf(rend, _many_results(cal_data, 60), lab, tmp_path, "HC-2026-000060"))
    total = len(pages)
    assert total >= 3, "60 result rows should spill over more than one results page"
    assert "GIẤY CHỨNG NHẬN HIỆU CHUẨN" in pages[0] and "CALIBRATION CERTIFICATE" in pages[0]
    for n, page in enumerate(pages, 1):
        assert "HC-2026-000060" in page, f"page {n} lacks the number"
        assert f"Trang {n}/{total} (Page {n} of {total})" in page, f"page {n}: no page x of y"
    results_pages = [page for page in pages if "10.003" in page or "69.003" in page]
    assert len(results_pages) >= 2
    for page in results_pages:  # repeatRows: the header row heads every results page
        flat = " ".join(page.split())
        assert "Giá trị danh định" in flat and "Expanded uncertainty U" in flat
    # the results start on page 1 when their heading and a few rows fit there (issue 19)
    assert "Xem kết quả tại trang 1" in pages[0] and "See results on page 1" in pages[0]
    assert "— Hết / End —" in pages[-1]


@needs_poppler
def test_calibration_prints_labels_statements_and_rounded_results(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    cal_data["results"].append(
        {"nominal": "10", "measured": "10.00347", "uncertainty": "0.0123", "unit": "g"}
    )
    text = _squash(" ".join(_pages(_pdf(rend, cal_data, lab, tmp_path))))
    for label in (
        "Đối tượng hiệu chuẩn", "Item calibrated", "Khách hàng", "Customer", "Địa chỉ",
        "Địa điểm hiệu chuẩn", "Place of calibration", "Ngày nhận", "Date of receipt",
        "Ngày hiệu chuẩn", "Date of calibration", "Ngày cấp", "Date of issue",
        "Phương pháp hiệu chuẩn", "Calibration method", "Chuẩn đo lường sử dụng",
        "Reference standards used", "Số giấy chứng nhận", "Certificate No.", "Hạn hiệu chuẩn",
        "Calibration due", "Điều kiện môi trường", "Environmental conditions", "Nhiệt độ",
        "Temperature", "Độ ẩm tương đối", "Relative humidity", "Hệ số phủ k",
        "Coverage factor k", "Người thực hiện", "Performed by", "Người soát lại", "Checked by",
        "Người có thẩm quyền ký", "Authorised signatory",
    ):  # fmt: skip
        assert _squash(label) in text, label
    for statement in (
        "nhân với hệ số phủ k = 2, tương ứng với xác suất phủ xấp xỉ 95 %",
        "coverage factor k = 2, corresponding to a coverage probability of approximately 95 %",
        "Kết quả hiệu chuẩn chỉ có giá trị đối với đối tượng được hiệu chuẩn.",
        "The results relate only to the item calibrated.",
        "This certificate shall not be reproduced except in full without the written approval",
        "The results are traceable to the national measurement standards of Vietnam",
    ):
        assert _squash(statement) in text, statement
    assert "V09.M-2026-0123" in text and "31/03/2027" in text  # standard and its due date
    assert "24/11/2026" in text and "27/11/2026" in text  # dd/mm/yyyy
    assert _squash("(21.3 ± 0.5) °C") in text
    # U 0.000062 stays 0.000062 and 10.00003 prints to the same place; U 0.0123 → 0.013, and
    # 10.00347 → 10.003 (GUM 7.2.6: U to two significant digits, the value to U's place).
    assert "10.0000300.0000300.000062" in text  # indicated, error, U
    assert "10.0030.0030.013" in text
    assert "10.00347" not in text and "0.0123" not in text
    assert "Trướchiệuchỉnh" not in text  # no stage given: no before/after grouping
    assert "Cógiátrịđến" not in text and "Tuyênbốsựphùhợp" not in text


def _statement(k: str, p: str) -> tuple[str, str]:
    return (
        f"nhân với hệ số phủ k = {k}, tương ứng với xác suất phủ xấp xỉ {p} %",
        f"coverage factor k = {k}, corresponding to a coverage probability of approximately {p} %",
    )


@needs_poppler
def test_uncertainty_statement_per_k_and_p_next_to_its_rows(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    unit = {"unit": "g"}
    cal_data["results"] = [
        {"nominal": "10", "measured": "10.0011", "uncertainty": "0.0011", **unit},
        {"nominal": "20", "measured": "20.0022", "uncertainty": "0.0011", "coverage_factor": "3",
         "coverage_probability": "0.9973", **unit},
        {"nominal": "30", "measured": "30.0033", "uncertainty": "0.0011", "coverage_factor": "1",
         "coverage_probability": "0.6827", **unit},
        {"nominal": "40", "measured": "40.0044", "uncertainty": "0.0011", "coverage_factor": "2",
         "coverage_probability": "0.9545", **unit},
        {"nominal": "50", "measured": "50.0055", "uncertainty": "0.0011",
         "coverage_factor": "2.37", "degrees_of_freedom": "8", **unit},  # p from GUM Table G.2
    ]  # fmt: skip
    text = _squash(" ".join(_pages(_pdf(rend, cal_data, lab, tmp_path))))
    order = []
    for value, k, p in (("10.0011", "2", "95"), ("20.0022", "3", "99.73"),
                        ("30.0033", "1", "68.27"), ("40.0044", "2", "95.45"),
                        ("50.0055", "2.37", "95.45")):  # fmt: skip
        vi, en = (_squash(s) for s in _statement(k, p))
        assert text.count(vi) == 1 and text.count(en) == 1, (k, p)
        order += [text.index(value), text.index(vi)]
    assert order == sorted(order), "each statement follows its own rows"
    assert _squash("k = 3, tương ứng với xác suất phủ xấp xỉ 95 %") not in text
    assert (
        _squash("k = 1, corresponding to a coverage probability of approximately 95 %") not in text
    )


@needs_poppler
def test_one_statement_when_every_row_shares_k_and_p(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    first, second = cal_data["results"][:2]
    cal_data["results"] = [{**first, "stage": "before"}, {**second, "stage": "after"}]
    for row in cal_data["results"]:
        row.update(coverage_factor="3", coverage_probability="0.9973")
    text = _squash(" ".join(_pages(_pdf(rend, cal_data, lab, tmp_path))))
    vi, en = (_squash(s) for s in _statement("3", "99.73"))
    assert text.count(vi) == 1 and text.count(en) == 1
    assert _squash("xấp xỉ 95 %") not in text


@needs_poppler
def test_results_keep_the_sign_and_a_prefix_per_row(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    cal_data["results"] = [
        {"nominal": "10", "measured": "9.9996", "uncertainty": "0.01", "unit": "g"},
        {"nominal": "1E-9", "measured": "1E-9", "uncertainty": "1E-12", "unit": "kPa"},
        {"nominal": "1000000000", "measured": "1000123456", "uncertainty": "1234567",
         "unit": "kWh"},
        {"nominal": "1E-9", "measured": "1E-9", "uncertainty": "1E-12", "unit": "%"},
        {"nominal": "20", "measured": "20.1", "uncertainty": "0.012", "unit": "°C",
         "resolution": "0.1"},
    ]  # fmt: skip
    # -layout: the table on page 1 shares the page with other columns of text
    text = _squash(_run("pdftotext", "-layout", _pdf(rend, cal_data, lab, tmp_path), "-"))
    # nominal, indicated, error, U, k, unit
    assert "1010.000\u22120.0000.0102g" in text  # the error keeps its sign: −0.000, not 0
    assert "11.00000.00000.00102µPa" in text  # not 0.000000001000 kPa
    assert "11.00010.00010.00132TWh" in text  # not 1000100000 kWh
    assert "11.00000.00000.00102×10\u22129%" in text  # a unit without prefixes: ×10⁻⁹
    assert "2020.10.1000.0122°C" in text  # the display shows 20.1, not 20.100
    assert "0.000000001" not in text and "1000100000" not in text


@needs_poppler
def test_calibration_optional_parts_print_only_when_given(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    first, second = cal_data["results"][:2]
    cal_data["results"] = [{**first, "stage": "before"}, {**second, "stage": "after"}]
    cal_data["conformity"] = {
        "statement": "Phù hợp cấp chính xác I / Complies with accuracy class I",
        "decision_rule": "Chấp nhận đơn giản (ILAC-G8) / Simple acceptance",
    }
    cal_data["valid_until"] = "2027-11-23"
    cal_data["deviations"] = "Không có / None"
    text = " ".join(" ".join(_pages(_pdf(rend, cal_data, lab, tmp_path))).split())
    assert "Trước hiệu chỉnh / Before adjustment" in text
    assert "Sau hiệu chỉnh / After adjustment" in text
    assert "Tuyên bố sự phù hợp" in text and "Complies with accuracy class I" in text
    assert "Quy tắc quyết định / Decision rule: Chấp nhận đơn giản" in text
    assert "Có giá trị đến / Valid until: 23/11/2027" in text
    assert "Deviations from the method" in text


@needs_poppler
def test_verification_prints_form_18_wording(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    pages = _pages(_pdf(rend, ver_data, lab, tmp_path, "KĐ-2026-000007"))
    text = " ".join(" ".join(pages).split())
    assert "GIẤY CHỨNG NHẬN KIỂM ĐỊNH" in pages[0] and "CERTIFICATE OF VERIFICATION" in pages[0]
    for n, page in enumerate(pages, 1):
        assert "KĐ-2026-000007" in page and f"Trang {n}/{len(pages)}" in page
    assert "Đạt yêu cầu kỹ thuật đo lường" in text
    assert "Meets the metrological requirements" in text
    assert "Định kỳ / Periodic" in text
    for label in (
        "Tên phương tiện đo", "Measuring instrument", "Type / Model", "Serial No.",
        "Cơ sở sản xuất", "Manufacturer", "Năm sản xuất", "Year of manufacture",
        "Đặc trưng kỹ thuật đo lường", "Metrological characteristics", "Phạm vi đo",
        "Measuring range", "Giá trị độ chia", "Scale interval", "Cấp chính xác",
        "Accuracy class", "Sai số lớn nhất cho phép", "Maximum permissible error",
        "Cơ sở sử dụng", "User", "Địa điểm sử dụng", "Place of use", "Phương pháp thực hiện",
        "Method of verification", "Chế độ kiểm định", "Verification mode", "Kết luận",
        "Conclusion", "Số tem kiểm định", "Verification stamp No.", "Có giá trị đến",
        "Valid until", "Kiểm định viên", "Verified by", "Thủ trưởng đơn vị",
        "Head of organisation", "GIÁM ĐỐC / DIRECTOR",
    ):  # fmt: skip
        assert label in text, label
    assert "(5 ÷ 50) L/min" in text and "± 0.10" in text and "-0.02" in text
    assert "ĐT-26 0012345" in text and "24/11/2027" in text
    assert "Đồng Tháp, ngày 27 tháng 11 năm 2026" in text
    assert "Dong Thap, 27 November 2026" in text
    assert "— Hết / End —" in text


@pytest.mark.parametrize(
    ("mode", "words"),
    [("initial", "Ban đầu / Initial"), ("after_repair", "Sau sửa chữa / After repair")],
)
def test_verification_mode_in_words(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings, mode: str, words: str
) -> None:
    rml = rend.render_rml(
        parse_certificate({**ver_data, "mode": mode}),
        number="KĐ-1",
        issued=ISSUED,
        qr_url=QR_URL,
        settings=lab,
    )
    assert words.replace(" / ", " / <i>") + "</i>" in rml


def test_failing_instrument_gets_no_verification_certificate(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings
) -> None:
    ver_data["checks"][1]["error"] = "0.11"  # MPE is 0.10
    with pytest.raises(CertissuerError, match="fails"):
        rend.render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


@needs_poppler
@pytest.mark.parametrize("sample", ["calibration.json", "verification.json"])
def test_every_font_is_embedded_and_title_is_the_number(
    rend: Renderer, lab: Settings, tmp_path: Path, sample: str
) -> None:
    path = _pdf(rend, _load(sample), lab, tmp_path, "HC-2026-000123")
    rows = _run("pdffonts", path).splitlines()[2:]
    assert rows, "no fonts listed"
    assert all(row.split()[-5] == "yes" for row in rows), rows  # the "emb" column
    assert not any("Helvetica" in row for row in rows)
    assert all("BeVietnamPro" in row for row in rows)
    assert "Title:           HC-2026-000123" in _run("pdfinfo", path)


@needs_poppler
@pytest.mark.parametrize("sample", ["calibration.json", "verification.json"])
def test_qr_code_decodes_to_the_url_from_a_150_dpi_render(
    rend: Renderer, lab: Settings, tmp_path: Path, sample: str
) -> None:
    path = _pdf(rend, _load(sample), lab, tmp_path)
    _run("pdftoppm", "-r", "150", "-png", path, tmp_path / "page")
    found: list[str] = []
    for png in sorted(tmp_path.glob("page*.png")):
        res = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True)
        found += [line for line in res.stdout.splitlines() if line]
    assert found == [QR_URL]
    assert QR_URL[:40] in " ".join(_pages(path)).replace("\n", "")  # printed small beneath


@needs_poppler
def test_lab_logo_is_embedded(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    logo = default_template_dir() / "assets" / "demo-logo.png"
    with_logo = lab.replace(lab_logo=logo)
    path = _pdf(rend, ver_data, with_logo, tmp_path)
    sizes = {tuple(row.split()[3:5]) for row in _run("pdfimages", "-list", path).splitlines()[2:]}
    assert ("96", "96") in sizes  # the logo, beside the QR code
    with pytest.raises(ConfigError, match="logo"):
        rend.render_pdf(
            parse_certificate(ver_data),
            number="KĐ-1",
            issued=ISSUED,
            qr_url=QR_URL,
            settings=lab.replace(lab_logo=tmp_path / "missing.png"),
        )


def test_render_is_pure_same_input_same_bytes(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings
) -> None:
    cert = parse_certificate(ver_data)
    first = rend.render_pdf(cert, number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab)
    again = rend.render_pdf(cert, number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab)
    other = rend.render_pdf(cert, number="KĐ-2", issued=ISSUED, qr_url=QR_URL, settings=lab)
    assert first == again and first.startswith(b"%PDF-")
    assert other != first


@pytest.mark.parametrize(
    ("issued", "vi", "en"),
    [
        (date(2026, 11, 27), "Đồng Tháp, ngày 27 tháng 11 năm 2026", "Dong Thap, 27 November 2026"),
        (date(2027, 2, 5), "Đồng Tháp, ngày 05 tháng 02 năm 2027", "Dong Thap, 5 February 2027"),
        (date(2027, 3, 9), "Đồng Tháp, ngày 09 tháng 3 năm 2027", "Dong Thap, 9 March 2027"),
    ],
)
def test_place_and_date_line(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings, issued: date, vi: str, en: str
) -> None:
    # Decree 30/2020: leading zero for days below 10 and for the months 1 and 2 only
    rml = rend.render_rml(
        parse_certificate(ver_data), number="KĐ-1", issued=issued, qr_url=QR_URL, settings=lab
    )
    assert vi in rml and en in rml


@needs_poppler
def test_markup_in_data_prints_literally(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = f'<plugInFlowable module="os" function="system" params="\'touch {marker}\'"/> & Co'
    cal_data["customer"]["name"] = evil
    cal_data["item"]["model"] = "<b>X</b> &amp; <evalString>1+1</evalString>"
    text = _squash(" ".join(_pages(_pdf(rend, cal_data, lab, tmp_path))))
    assert _squash(evil) in text
    assert "<b>X</b>&amp;<evalString>1+1</evalString>" in text
    assert not marker.exists()


# -- errors: glyphs, templates, fonts -------------------------------------------------------


@pytest.mark.parametrize("char", ["𝄞", "漢"])
def test_character_missing_from_the_font_names_character_and_field(
    rend: Renderer, cal_data: dict[str, Any], lab: Settings, char: str
) -> None:
    cal_data["customer"]["name"] = f"Công ty {char} TNHH"
    with pytest.raises(TemplateError) as info:
        rend.render_pdf(
            parse_certificate(cal_data), number="HC-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )
    message = str(info.value)
    assert f"'{char}' (U+{ord(char):04X})" in message
    assert "field 'customer.name'" in message


def test_character_missing_from_the_font_in_settings_is_named(
    rend: Renderer, ver_data: dict[str, Any], lab: Settings
) -> None:
    with pytest.raises(TemplateError, match=r"field 'settings.lab_name_en'"):
        rend.render_rml(
            parse_certificate(ver_data),
            number="KĐ-1",
            issued=ISSUED,
            qr_url=QR_URL,
            settings=lab.replace(lab_name_en="Lab ☃"),
        )


def _template_dir(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "lab-templates"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text, encoding="utf-8")
    return folder


def test_missing_template_is_a_template_error(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(tmp_path)
    with pytest.raises(TemplateError, match=r"verification\.rml\.j2: template not found"):
        Renderer(folder).render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


def test_undefined_variable_names_template_and_line(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(
        tmp_path, verification__rml__j2="<document filename='x.pdf'>\n<story>\n{{ nope }}\n"
    )
    with pytest.raises(TemplateError, match=r"verification\.rml\.j2, line 3: 'nope' is undefined"):
        Renderer(folder).render_rml(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


def test_template_syntax_error_names_template_and_line(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(tmp_path, verification__rml__j2="<document>\n\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"verification\.rml\.j2, line 3"):
        Renderer(folder).render_rml(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


_MINIMAL = """<document filename="x.pdf">
<docinit>{docinit}</docinit>
<template><pageTemplate id="p"><pageGraphics>{graphics}</pageGraphics>
<frame id="f" x1="20mm" y1="20mm" width="170mm" height="250mm"/></pageTemplate></template>
<stylesheet>{styles}</stylesheet>
<story>{story}</story>
</document>
"""


def _doc(
    docinit: str = "", graphics: str = "", story: str = "<para>x</para>", styles: str = ""
) -> str:
    return _MINIMAL.format(docinit=docinit, graphics=graphics, story=story, styles=styles)


_FONT = '<registerTTFont faceName="Body" fileName="{{ fonts.regular }}"/>'


def test_missing_font_file_is_a_template_error(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(
        tmp_path,
        verification__rml__j2=_doc(
            docinit='<registerTTFont faceName="Body" fileName="fonts/Gone.ttf"/>'
        ),
    )
    with pytest.raises(TemplateError, match=r"font file for 'Body' not found: .*Gone\.ttf"):
        Renderer(folder).render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


def test_non_embedded_font_is_refused(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(
        tmp_path,
        verification__rml__j2=_doc(
            docinit=_FONT, styles='<paraStyle name="Normal" fontName="Helvetica"/>'
        ),
    )
    with pytest.raises(TemplateError, match="'Helvetica', which would not be embedded"):
        Renderer(folder).render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )


def test_lab_template_with_own_font_and_asset_renders(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    folder = _template_dir(tmp_path)
    (folder / "fonts").mkdir()
    shutil.copy(Renderer().fonts["bold"], folder / "fonts" / "LabFont.ttf")
    (folder / "assets").mkdir()
    shutil.copy(default_template_dir() / "assets" / "demo-logo.png", folder / "assets" / "l.png")
    (folder / "verification.rml.j2").write_text(
        _doc(
            docinit='<registerTTFont faceName="Lab" fileName="fonts/LabFont.ttf"/>',
            styles='<paraStyle name="Normal" fontName="Lab"/>',
            graphics='<image file="assets/l.png" x="10mm" y="10mm" width="5mm" height="5mm"/>',
            story="<para>{{ cert.instrument.name }} {{ number }}</para>",
        ),
        encoding="utf-8",
    )
    renderer = Renderer(folder)
    cert = parse_certificate(ver_data)
    rml = renderer.render_rml(cert, number="KĐ-9", issued=ISSUED, qr_url=QR_URL, settings=lab)
    assert f'file="{folder.resolve() / "assets" / "l.png"}"' in rml  # made absolute
    pdf = renderer.render_pdf(cert, number="KĐ-9", issued=ISSUED, qr_url=QR_URL, settings=lab)
    assert pdf.startswith(b"%PDF-")


@needs_poppler
@pytest.mark.parametrize(("default", "passes"), [("2", 1), ("9", 2)])
def test_forward_reference_is_right_in_one_pass_or_after_a_second(
    tmp_path: Path,
    ver_data: dict[str, Any],
    lab: Settings,
    monkeypatch: pytest.MonkeyPatch,
    default: str,
    passes: int,
) -> None:
    folder = _template_dir(
        tmp_path,
        verification__rml__j2=_doc(
            docinit=_FONT,
            styles='<paraStyle name="Normal" fontName="Body"/>',
            graphics='<setFont name="Body" size="8"/><drawRightString x="190mm" y="10mm">'
            'Trang <pageNumber/>/<getName id="lastPage"/></drawRightString>',
            story=f'<para>See page <getName id="later" default="{default}"/>.</para>'
            '<nextPage/><namedString id="later"><pageNumber/></namedString><para>here</para>',
        ),
    )
    builds: list[int] = []
    original = _z3c.Document.process

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        builds.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_z3c.Document, "process", counting)
    path = tmp_path / "fwd.pdf"
    path.write_bytes(
        Renderer(folder).render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )
    )
    pages = _pages(path)
    assert "See page 2." in pages[0]
    assert "Trang 1/2" in pages[0] and "Trang 2/2" in pages[1]
    assert len(builds) == passes


# -- the allowlist: every escape is refused -------------------------------------------------

_OUTSIDE_TTF = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_GIF = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

ATTACKS = [
    pytest.param(
        _doc(story="<plugInFlowable module='os' function='system' params='\"id\"'/>"),
        r"line 6, <plugInFlowable>: element is not allowed",
        id="plugInFlowable",
    ),
    pytest.param(
        _doc(graphics="<plugInGraphic module='os' function='system' params='\"id\"'/>"),
        r"line 3, <plugInGraphic>: element is not allowed",
        id="plugInGraphic",
    ),
    pytest.param(
        _doc(story="<para><evalString>__import__('os').system('id')</evalString></para>"),
        r"line 6, <evalString>: element is not allowed",
        id="evalString",
    ),
    pytest.param(
        _doc(story="<includePdfPages filename='/etc/passwd'/>"),
        r"line 6, <includePdfPages>: element is not allowed",
        id="includePdfPages",
    ),
    pytest.param(
        _doc(story="<imageAndFlowables imageName='/etc/passwd'><para>x</para></imageAndFlowables>"),
        r"<imageAndFlowables>: element is not allowed",
        id="imageAndFlowables",
    ),
    pytest.param(
        _doc(docinit="<logConfig filename='/tmp/written-by-template.log'/>"),
        r"line 2, <logConfig>: element is not allowed",
        id="logConfig-writes-files",
    ),
    pytest.param(
        _doc(story="<blink/>"), r"line 6, <blink>: element is not allowed", id="unknown-element"
    ),
    pytest.param(
        _doc(story="<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/passwd'/>"),
        r"element is not allowed",
        id="xinclude",
    ),
    pytest.param(
        _doc(story="<spacer length='1' href='http://evil.example/'/>"),
        r"line 6, <spacer> attribute 'href': attribute is not allowed",
        id="attribute-not-allowed",
    ),
    pytest.param(
        _doc(graphics="<image file='/etc/passwd' x='0' y='0'/>"),
        r"line 3, <image> attribute 'file': expected a .png/.jpg/.jpeg/.gif file",
        id="image-from-etc-passwd",
    ),
    pytest.param(
        _doc(graphics="<image file='/etc/evil.png' x='0' y='0'/>"),
        r"<image> attribute 'file': '/etc/evil.png' is outside the allowed folders",
        id="image-outside-allowed-dirs",
    ),
    pytest.param(
        _doc(docinit=f"<registerTTFont faceName='X' fileName='{_OUTSIDE_TTF}'/>"),
        r"line 2, <registerTTFont> attribute 'fileName': .* is outside the allowed folders",
        id="registerTTFont-from-outside",
    ),
    pytest.param(
        _doc(story="<img src='assets/../../../../etc/x.png'/>"),
        r"line 6, <img> attribute 'src': '\.\.' is not allowed",
        id="dotdot-escape",
    ),
    pytest.param(
        _doc(story="<img src='http://evil.example/x.png'/>"),
        r"<img> attribute 'src': URLs and package paths are not allowed",
        id="http-image",
    ),
    pytest.param(
        _doc(graphics="<image file='file:///etc/x.png' x='0' y='0'/>"),
        r"<image> attribute 'file': URLs and package paths are not allowed",
        id="file-uri",
    ),
    pytest.param(
        _doc(story="<img src='[os]/x.png'/>"),
        r"<img> attribute 'src': URLs and package paths are not allowed",
        id="package-path-imports-a-module",
    ),
    pytest.param(
        _doc(story="<img src='python:os.system'/>"),
        r"URLs and package paths are not allowed",
        id="python-scheme",
    ),
    pytest.param(
        _doc(story=f"<img src='data:image/gif;base64,{_GIF}'/>"),
        r"<img> attribute 'src': only data:image/png;base64",
        id="data-uri-not-png",
    ),
    pytest.param(
        _doc(story=f"<img src='data:image/png;base64,{_GIF}'/>"),
        r"the data URI does not hold a PNG image",
        id="data-uri-lies-about-png",
    ),
    pytest.param(
        _doc(story="<para>Trang <getName id='lastPage'/></para>"),
        r"<getName> attribute 'id': lastPage may only be used in drawString",
        id="lastPage-outside-page-graphics",
    ),
    pytest.param(
        '<?xml version="1.0"?>\n<!DOCTYPE document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "\n<document><story><para>&xxe;</para></story></document>",
        r"RML line 2: DOCTYPE and entity declarations are not allowed",
        id="external-entity",
    ),
    pytest.param(
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><document>&lol3;</document>',
        r"DOCTYPE and entity declarations are not allowed",
        id="billion-laughs",
    ),
    pytest.param(
        "<document><story><para>&nbsp;</para></story></document>",
        r"RML line 1: not well-formed XML",
        id="undeclared-entity",
    ),
    pytest.param("<html/>", r"<html>: the root element must be <document>", id="not-rml"),
]


@pytest.mark.parametrize(("rml", "message"), ATTACKS)
def test_sanitizer_refuses(rml: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    with pytest.raises(TemplateError, match=message):
        sanitize_rml(rml, allowed_dirs=[tmp_path])


def test_sanitizer_refuses_a_symlink_that_leads_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\nsecret")
    allowed = tmp_path / "templates"
    (allowed / "assets").mkdir(parents=True)
    os.symlink(outside / "secret.png", allowed / "assets" / "logo.png")
    rml = _doc(graphics="<image file='assets/logo.png' x='0' y='0'/>")
    with pytest.raises(TemplateError, match=r"'assets/logo.png' is outside the allowed folders"):
        sanitize_rml(rml, allowed_dirs=[allowed])


def test_sanitizer_keeps_safe_rml_and_resolves_paths(tmp_path: Path) -> None:
    fonts = Path(Renderer().fonts["regular"]).parent
    png = qr.data_uri(qr_png("https://x.example/"))
    rml = _doc(
        docinit=f"<registerTTFont faceName='B' fileName='{fonts / 'BeVietnamPro-Bold.ttf'}'/>",
        graphics="<drawRightString x='1' y='1'>Trang <pageNumber/>/<getName id='lastPage'/>"
        "</drawRightString><image file='assets/logo.png' x='0' y='0'/>",
        story=f"<!-- a comment --><para>A &amp; B</para><img src='{png}' width='2cm'/>",
    )
    out = sanitize_rml(rml, allowed_dirs=[tmp_path, fonts])
    assert f'file="{tmp_path.resolve() / "assets" / "logo.png"}"' in out
    assert "A &amp; B" in out and png in out
    assert "comment" not in out


def test_template_with_plugin_is_refused_by_the_renderer(
    tmp_path: Path, ver_data: dict[str, Any], lab: Settings
) -> None:
    marker = tmp_path / "pwned"
    folder = _template_dir(
        tmp_path,
        verification__rml__j2=_doc(
            story=f"<plugInFlowable module='os' function='system' params=\"'touch {marker}'\"/>"
        ),
    )
    with pytest.raises(TemplateError, match="plugInFlowable"):
        Renderer(folder).render_pdf(
            parse_certificate(ver_data), number="KĐ-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )
    assert not marker.exists()


# -- QR codes -------------------------------------------------------------------------------


def test_qr_png_picks_the_mask_qrcode_would_pick() -> None:
    rng = random.Random(20261127)
    alphabet = string.ascii_letters + string.digits + "-_.~"
    for length in [1, 20, 60, 120, 180, 209, 300, 700] * 2:
        url = "https://kiemdinh.example.vn/v/" + "".join(rng.choices(alphabet, k=length))
        stock = qrcode.QRCode(error_correction=ERROR_CORRECT_M)
        stock.add_data(url)
        stock.best_fit()
        expected = stock.best_mask_pattern()
        mine = qrcode.QRCode(error_correction=ERROR_CORRECT_M)
        mine.add_data(url)
        mine.best_fit()
        assert qr.best_mask(mine) == expected, url


@pytest.mark.skipif(shutil.which("zbarimg") is None, reason="needs zbar-tools")
def test_qr_png_is_a_png_that_decodes(tmp_path: Path) -> None:
    png = qr_png(QR_URL)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "qr.png").write_bytes(png)
    assert _run("zbarimg", "--raw", "-q", tmp_path / "qr.png").strip() == QR_URL


def test_default_template_dir_has_both_templates() -> None:
    folder = default_template_dir()
    assert (folder / "verification.rml.j2").is_file()
    assert (folder / "calibration.rml.j2").is_file()
