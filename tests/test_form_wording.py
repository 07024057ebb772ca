"""Form wording that says one thing (issue 16): real renders read back with pdftotext.

The traceability statement names what the standards trace to, from their data, and never prints
both alternatives; the accreditation mark is on calibration work within the accredited scope
only, the designation decision on verification certificates; results from an external provider
are marked and the provider named (ISO/IEC 17025 §7.8.2.1 p); values the customer supplied are
marked and the disclaimer of §7.8.2.2 printed.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from certissuer.config import Settings
from certissuer.errors import ConfigError
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.render import Renderer

from ._forge import pdftotext
from .conftest import lab_settings

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ISSUED = date(2026, 11, 27)
URL = "https://kiemdinh.example.vn/v/abc"

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


@pytest.fixture(scope="module")
def rend() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def lab() -> Settings:
    return lab_settings(
        lab_accreditation="VILAS 321",
        lab_designation="Quyết định chỉ định số 123/QĐ-TĐC",
    )


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (SAMPLES / name).read_text(encoding="utf-8"), parse_float=Decimal
    )
    return data


def _text(rend: Renderer, data: dict[str, Any], lab: Settings, **options: Any) -> str:
    """The words of the rendered certificate, whitespace squashed to single spaces."""
    pdf = rend.render_pdf(
        parse_certificate(data), number="HC-1", issued=ISSUED, qr_url=URL, settings=lab, **options
    )
    return " ".join(pdftotext(pdf).split())


def _standards(data: dict[str, Any], *extra: dict[str, Any]) -> dict[str, Any]:
    """The calibration sample with its standard's traceability replaced by `extra` (one
    standard per item)."""
    base = {
        k: v for k, v in data["standards"][0].items() if k not in {"traceable_to", "calibrated_by"}
    }
    data["standards"] = [{**base, "name": f"Chuẩn {i}", **e} for i, e in enumerate(extra, 1)]
    return data


NATIONAL_VI = "chuẩn quốc gia của Việt Nam"
NATIONAL_EN = "the national measurement standards of Vietnam"
SI_EN = "the International System of Units (SI)"


# -- traceability ---------------------------------------------------------------------------


def test_national_traceability_names_only_the_national_standards(
    rend: Renderer, lab: Settings
) -> None:
    data = _standards(_load("calibration.json"), {"traceable_to": "national"})
    text = _text(rend, data, lab)
    assert f"Kết quả được liên kết chuẩn tới {NATIONAL_VI}, thông qua" in text
    assert f"The results are traceable to {NATIONAL_EN}, through the reference" in text
    assert "(SI)" not in text and "quốc tế" not in text
    assert "national / international" not in text


def test_si_traceability_names_the_lab_and_not_the_national_standards(
    rend: Renderer, lab: Settings
) -> None:
    data = _standards(
        _load("calibration.json"), {"traceable_to": "si", "calibrated_by": "PTB (Germany)"}
    )
    text = _text(rend, data, lab)
    assert f"The results are traceable to {SI_EN} through PTB (Germany)" in text
    assert "hệ đơn vị đo quốc tế (SI) thông qua PTB (Germany)" in text
    assert NATIONAL_VI not in text and NATIONAL_EN not in text


def test_no_traceability_data_claims_neither_alternative(rend: Renderer, lab: Settings) -> None:
    data = _standards(_load("calibration.json"), {})
    text = _text(rend, data, lab)
    assert "Kết quả được liên kết chuẩn thông qua các chuẩn đo lường nêu trên." in text
    assert "The results are traceable through the reference standards listed above." in text
    for claim in (NATIONAL_VI, NATIONAL_EN, "(SI)", "quốc gia /", "national /"):
        assert claim not in text, claim


def test_standards_that_differ_are_each_named(rend: Renderer, lab: Settings) -> None:
    data = _standards(
        _load("calibration.json"),
        {"traceable_to": "national"},
        {"traceable_to": "si", "calibrated_by": "NMIJ"},
    )
    text = _text(rend, data, lab)
    assert f"to {NATIONAL_EN} (Chuẩn 1); to {SI_EN} through NMIJ (Chuẩn 2)" in text


def test_traceable_to_is_a_closed_choice() -> None:
    data = _standards(_load("calibration.json"), {"traceable_to": "international"})
    with pytest.raises(ValueError, match="traceable_to"):
        parse_certificate(data)


# -- accreditation mark and designation -------------------------------------------------------


def test_designation_on_verification_and_no_accreditation_mark(
    rend: Renderer, lab: Settings
) -> None:
    text = _text(rend, _load("verification.json"), lab)
    assert "Quyết định chỉ định số 123/QĐ-TĐC" in text
    assert "VILAS 321" not in text


def test_calibration_carries_the_mark_within_scope_and_not_the_designation(
    rend: Renderer, lab: Settings
) -> None:
    inside = _text(rend, _load("calibration.json"), lab)
    assert "VILAS 321" in inside and "Quyết định chỉ định" not in inside
    outside = _text(rend, _load("calibration.json"), lab, accredited=False)
    assert "VILAS 321" not in outside


# -- the accredited scope without a register (issued through the Issuer) ---------------------


def _issue(
    settings: Settings, url: str, sealer: Any, renderer: Renderer, out: Path, data: dict[str, Any]
) -> str:
    issuer = Issuer(
        settings.replace(ledger_url=url),
        ledger=Ledger.open(url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=out,
        renderer=renderer,
    )
    issued = issuer.issue(parse_certificate(data))
    return " ".join(pdftotext(issued.path.read_bytes()).split())


OUTSIDE = "outside the laboratory's scope of accreditation"


@pytest.mark.parametrize(
    ("scope", "marked"),
    [
        (("Cân / Balance: 0..500 g",), True),  # every result (10 … 200 g) inside
        (("Cân / Balance: 0..100 g",), False),  # 200 g outside
        (("Nhiệt kế / Thermometer: 0..500 g",), False),  # not this item
        (("0..100 g", "100..500 g"), True),  # any item; each result inside one line
    ],
)
def test_profile_scope_decides_the_mark_without_a_register(
    settings: Settings,
    any_ledger_url: str,
    sealer: Any,
    renderer: Renderer,
    tmp_path: Path,
    scope: tuple[str, ...],
    marked: bool,
) -> None:
    lab = settings.replace(lab_accreditation="VILAS 1234", lab_accredited_scope=scope)
    text = _issue(lab, any_ledger_url, sealer, renderer, tmp_path, _load("calibration.json"))
    assert ("VILAS 1234" in text) is marked
    assert (OUTSIDE in text) is not marked


def test_no_scope_data_prints_no_mark_and_says_so_once(
    settings: Settings,
    any_ledger_url: str,
    sealer: Any,
    renderer: Renderer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lab = settings.replace(lab_accreditation="VILAS 1234")
    with caplog.at_level(logging.WARNING, logger="certissuer"):
        text = _issue(lab, any_ledger_url, sealer, renderer, tmp_path, _load("calibration.json"))
    assert "VILAS 1234" not in text
    assert OUTSIDE not in text  # no scope data: no claim either way
    notes = [r.getMessage() for r in caplog.records if "accredited scope" in r.getMessage()]
    assert len(notes) == 1 and "without the accreditation mark" in notes[0]


def test_a_bad_scope_line_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"\[lab\] accredited_scope\[1\]: '0 - 100 g'"):
        lab_settings(lab_accredited_scope=("0..1 g", "0 - 100 g"))


# -- external provider and customer-supplied information -------------------------------------


def test_external_provider_marks_the_rows_and_is_named(rend: Renderer, lab: Settings) -> None:
    data = _load("calibration.json")
    plain = _text(rend, data, lab)
    assert "†" not in plain and "external provider" not in plain
    data["external_provider"] = "Phòng thí nghiệm X (VILAS 999)"
    text = _text(rend, data, lab)
    rows = len(data["results"])
    assert text.count("†") == rows + 2  # one mark per row, the footnote's two languages
    assert "† Kết quả do nhà cung cấp bên ngoài thực hiện: Phòng thí nghiệm X (VILAS 999)." in text
    assert "† Results provided by an external provider: Phòng thí nghiệm X (VILAS 999)." in text


def test_customer_supplied_values_are_marked_with_the_disclaimer(
    rend: Renderer, lab: Settings
) -> None:
    data = _load("calibration.json")
    disclaimer = (
        "* Information supplied by the customer; the laboratory is not responsible for it or "
        "for results it may affect."
    )
    assert disclaimer not in _text(rend, data, lab)
    data["customer_supplied"] = ["item.serial", "place_of_calibration"]
    text = _text(rend, data, lab)
    assert f"{data['item']['serial']} *" in text
    assert f"{data['place_of_calibration']} *" in text
    assert f"{data['customer']['name']} *" not in text
    assert disclaimer in text
    assert (
        "* Thông tin do khách hàng cung cấp; phòng thí nghiệm không chịu trách nhiệm về thông "
        "tin này và các kết quả chịu ảnh hưởng của nó."
    ) in text


def test_customer_supplied_names_only_known_fields() -> None:
    data = _load("calibration.json")
    data["customer_supplied"] = ["item.colour"]
    with pytest.raises(ValueError, match="customer_supplied"):
        parse_certificate(data)
