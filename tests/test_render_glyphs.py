"""Characters the certificate font lacks: Ω prints in reportlab's Vera (searchable as Ω), the
Greek mu of new input becomes the micro sign, and a character no font has is still refused.

Read back as a person would: pdftotext for the words, pdffonts for the embedded fonts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from certissuer import intake
from certissuer.config import Settings
from certissuer.errors import TemplateError
from certissuer.model import canonical_json, parse_certificate
from certissuer.model.units import normalise_unit
from certissuer.render import Renderer
from certissuer.render.fallback import Fallback, apply_fallback

from .conftest import lab_settings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ISSUED = date(2026, 11, 27)
QR_URL = "https://kiemdinh.example.vn/v/eyJhbGciOiJFZERTQSJ9"
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None or shutil.which("pdffonts") is None,
    reason="needs poppler-utils",
)
MU, MICRO, OMEGA, OHM = "\u03bc", "\u00b5", "\u03a9", "\u2126"


@pytest.fixture(scope="module")
def rend() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def lab() -> Settings:
    return lab_settings(lab_place="Đồng Tháp")


def _resistance() -> dict[str, Any]:
    """The calibration sample with results in Ω, kΩ (written with the ohm sign) and μV."""
    data: dict[str, Any] = json.loads(
        (SAMPLES / "calibration.json").read_text(encoding="utf-8"), parse_float=Decimal
    )
    row = data["results"][0]
    data["results"] = [
        {**row, "quantity": "Điện trở / Resistance", "unit": OMEGA, "nominal": "100",
         "measured": "100.0021", "uncertainty": "0.0012"},
        {**row, "quantity": "Điện trở / Resistance", "unit": f"k{OHM}", "nominal": "10",
         "measured": "10.00004", "uncertainty": "0.000021"},
        {**row, "quantity": "Điện áp / Voltage", "unit": f"{MU}V", "nominal": "500",
         "measured": "500.7", "uncertainty": "0.4"},
    ]  # fmt: skip
    return data


def _run(*args: str | Path) -> str:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True).stdout


def _render(rend: Renderer, data: dict[str, Any], lab: Settings, tmp_path: Path) -> Path:
    pdf = rend.render_pdf(
        parse_certificate(data), number="HC-1", issued=ISSUED, qr_url=QR_URL, settings=lab
    )
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return path


def test_new_input_writes_the_micro_sign_and_the_omega() -> None:
    cert = parse_certificate(_resistance())
    assert [r.unit for r in cert.results] == [OMEGA, f"k{OMEGA}", f"{MICRO}V"]
    assert normalise_unit(f"{MU}m {OHM}") == f"{MICRO}m {OMEGA}"


def test_a_results_file_is_read_with_the_micro_sign(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps([_resistance()], default=str, ensure_ascii=False), "utf-8")
    [record] = intake.read_certificates(path)
    assert [r.unit for r in record.cert.results] == [OMEGA, f"k{OMEGA}", f"{MICRO}V"]


def test_a_stored_record_keeps_its_characters_and_its_digest() -> None:
    # Issued before the normalisation: the ledger holds "μV"; reading it back must not
    # change a character, or the recomputed data digest would no longer match.
    stored = {**_resistance(), "results": [{**_resistance()["results"][2]}]}
    cert = parse_certificate(stored, stored=True)
    assert cert.results[0].unit == f"{MU}V"
    assert f"{MU}V".encode() in canonical_json(cert)


@needs_poppler
def test_ohm_and_micro_print_searchable_with_vera_embedded(
    rend: Renderer, lab: Settings, tmp_path: Path
) -> None:
    path = _render(rend, _resistance(), lab, tmp_path)
    text = _run("pdftotext", path, "-")
    assert OMEGA in text and f"k{OMEGA}" in text and f"{MICRO}V" in text
    assert OHM not in text and MU not in text
    fonts = _run("pdffonts", path).splitlines()[2:]
    vera = [row for row in fonts if "+BitstreamVeraSans-Roman " in row]  # Vera.ttf's PS name
    assert vera, fonts
    assert all(row.split()[-5] == "yes" for row in fonts), fonts  # every font embedded


@needs_poppler
def test_a_certificate_without_such_characters_does_not_embed_vera(
    rend: Renderer, lab: Settings, tmp_path: Path
) -> None:
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    fonts = _run("pdffonts", _render(rend, data, lab, tmp_path))
    assert "Vera" not in fonts and "BeVietnamPro" in fonts


@needs_poppler
def test_ohm_in_a_bold_paragraph_prints_in_vera_bold(
    rend: Renderer, lab: Settings, tmp_path: Path
) -> None:
    data = _resistance()
    data["item"]["name"] = f"Điện trở chuẩn 100 {OMEGA}"  # the bold item name on the form
    path = _render(rend, data, lab, tmp_path)
    assert "+BitstreamVeraSans-Bold " in _run("pdffonts", path)
    assert f"100 {OMEGA}" in _run("pdftotext", path, "-")


def test_the_rml_wraps_only_the_missing_characters(rend: Renderer, lab: Settings) -> None:
    rml = rend.render_rml(
        parse_certificate(_resistance()), number="HC-1", issued=ISSUED, qr_url=QR_URL,
        settings=lab,
    )  # fmt: skip
    root = etree.fromstring(rml.encode())
    wrapped = [f.text for f in root.iter("font") if f.get("face") == "Vera"]
    assert wrapped and set(wrapped) == {OMEGA}
    assert f'k<font face="Vera">{OMEGA}</font>' in rml  # the prefix stays in the main font


@pytest.mark.parametrize("char", ["漢", MU])
def test_a_character_in_neither_font_is_still_refused(
    rend: Renderer, lab: Settings, char: str
) -> None:
    data = _resistance()
    data["customer"]["name"] = f"Công ty {char} {OMEGA} TNHH"
    with pytest.raises(TemplateError) as info:
        rend.render_pdf(
            parse_certificate(data), number="HC-1", issued=ISSUED, qr_url=QR_URL, settings=lab
        )
    message = str(info.value)
    assert f"character '{char}' (U+{ord(char):04X}) in field 'customer.name'" in message
    assert "is not in the font BeVietnamPro, BeVietnamPro-Bold" in message
    assert "it would print as a blank" in message and "Vera" not in message


def test_a_character_drawn_on_the_canvas_is_refused(rend: Renderer, lab: Settings) -> None:
    # The number line at the foot of each page is drawn with drawString, which cannot switch
    # fonts: an Ω there would print blank, so it is refused though Vera has it.
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    with pytest.raises(TemplateError, match=r"'Ω' \(U\+03A9\) in field 'number'"):
        rend.render_pdf(
            parse_certificate(data),
            number=f"HC-{OMEGA}-1",
            issued=ISSUED,
            qr_url=QR_URL,
            settings=lab,
        )


def test_a_plain_cell_becomes_a_paragraph_styled_as_the_cell() -> None:
    root = etree.fromstring(
        "<document><stylesheet><blockTableStyle id='g'>"
        "<blockFont name='Main' size='8.5' leading='10'/>"
        "<blockAlignment value='CENTER' start='1,0' stop='-1,-1'/>"
        "<blockTextColor colorName='#333333' start='0,1' stop='-1,-1'/>"
        "</blockTableStyle></stylesheet><story><blockTable style='g'>"
        "<tr><td>a</td><td>b</td></tr><tr><td>1</td><td>5 kΩ</td></tr>"
        "</blockTable></story></document>"
    )
    fallback = Fallback(
        "Vera", frozenset({"Vera"}), main=frozenset(map(ord, "ab15 k")),
        covered=frozenset(map(ord, "Ωk")),
    )  # fmt: skip
    apply_fallback(root, fallback)
    cell = root.findall("story/blockTable/tr")[1][1]
    [para] = cell
    assert dict(para.attrib) == {
        "fontName": "Main", "fontSize": "8.5", "leading": "10", "alignment": "center",
        "textColor": "#333333",
    }  # fmt: skip
    assert etree.tostring(para, encoding="unicode").endswith('5 k<font face="Vera">Ω</font></para>')
    assert root.findall("story/blockTable/tr")[1][0].text == "1"  # untouched: nothing to wrap


def test_a_resistance_certificate_issues_and_verifies_valid(issuer: Any, verifier: Any) -> None:
    from certissuer.verify import Verdict

    issued = issuer.issue(parse_certificate(_resistance()))
    entry = issuer.ledger.get(issued.number)
    assert entry.data()["results"][2]["unit"] == f"{MICRO}V"
    assert verifier.verify_pdf(issued.path.read_bytes()).verdict is Verdict.VALID
