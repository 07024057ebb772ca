"""Verification rules (issue 16): MPE units of their own, the procedures' MPE table, the
decision rule (simple acceptance, or guarded acceptance per ILAC-G8:09/2019) on the page."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from certissuer.errors import ConfigError, IssueRefused
from certissuer.model import (
    CalibrationCertificate,
    CheckPoint,
    MetrologicalRange,
    Verdict,
    VerificationCertificate,
    contradictions,
    load_mpe_rules,
    parse_certificate,
)

from .conftest import lab_settings

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

RULES = load_mpe_rules()


def _ver(data: dict[str, Any]) -> VerificationCertificate:
    cert = parse_certificate(data)
    assert isinstance(cert, VerificationCertificate)
    return cert


def _cal(data: dict[str, Any]) -> CalibrationCertificate:
    cert = parse_certificate(data)
    assert isinstance(cert, CalibrationCertificate)
    return cert


def _with_u(data: dict[str, Any], u: str = "0.02") -> dict[str, Any]:
    return {**data, "checks": [{**c, "uncertainty": u} for c in data["checks"]]}


# --- units of their own --------------------------------------------------------------------


def test_scale_interval_and_mpe_have_their_own_units() -> None:
    r = MetrologicalRange(
        lower="5", upper="50", unit="L/min", scale_interval="0.01", scale_interval_unit="L",
        accuracy_class="0.5", mpe="0.5", mpe_unit="% of volume",
    )  # fmt: skip
    assert (r.scale_interval_symbol, r.mpe_symbol) == ("L", "% of volume")
    plain = MetrologicalRange(lower="0", upper="60", unit="kg", mpe="0.02")
    assert plain.mpe_symbol == "kg" and plain.scale_interval_symbol == "kg"


@pytest.mark.parametrize("unit", ["% of nothing", "lbs"])
def test_unknown_mpe_unit_is_refused(unit: str) -> None:
    with pytest.raises(ValidationError, match="% of reading"):
        MetrologicalRange(lower="5", upper="50", unit="L/min", mpe="0.5", mpe_unit=unit)


def test_relative_mpe_applies_to_the_check_reference_value() -> None:
    c = CheckPoint(nominal="20", error="0.06", mpe="0.5", mpe_unit="% of volume", unit="L")
    assert c.permitted_error == Decimal("0.1") and c.passes
    bad = CheckPoint(nominal="20", error="0.11", mpe="0.5", mpe_unit="% of reading", unit="L")
    assert bad.verdict is Verdict.FAIL and "MPE 0.1 L (0.5 % of reading)" in bad.finding


def test_check_mpe_in_another_absolute_unit_is_refused() -> None:
    with pytest.raises(ValidationError, match="expected mpe_unit 'L'"):
        CheckPoint(nominal="20", error="0.06", mpe="100", mpe_unit="mL", unit="L")


# --- the decision rule ---------------------------------------------------------------------


def test_simple_acceptance_is_error_within_mpe() -> None:
    assert CheckPoint(nominal="20", error="-0.10", mpe="0.10", unit="L").verdict is Verdict.PASS
    assert CheckPoint(nominal="20", error="0.11", mpe="0.10", unit="L").verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        ("0.08", Verdict.PASS),  # |e| ≤ MPE − U
        ("0.09", Verdict.INDETERMINATE),  # in the guard band, inside the MPE
        ("-0.12", Verdict.INDETERMINATE),  # outside the MPE, within MPE + U
        ("0.13", Verdict.FAIL),  # |e| > MPE + U
    ],
)
def test_guarded_acceptance_per_ilac_g8(error: str, verdict: Verdict) -> None:
    c = CheckPoint(nominal="20", error=error, mpe="0.10", unit="L", uncertainty="0.02")
    assert c.verdict is verdict
    assert c.test_uncertainty_ratio == Decimal("5.0")


def test_certificate_states_its_decision_rule(ver_data: dict[str, Any]) -> None:
    vi, en = _ver(ver_data).decision_rule
    assert "|sai số| ≤ MPE" in vi and en.startswith("Simple acceptance")
    vi, en = _ver(_with_u(ver_data, "0.025")).decision_rule
    assert "ILAC-G8:09/2019" in vi and "không xác định được" in vi and "4,0" in vi
    assert en.startswith("Guarded acceptance") and "lowest: 4.0" in en


def test_uncertainty_on_some_checks_only_is_refused(ver_data: dict[str, Any]) -> None:
    ver_data["checks"][0]["uncertainty"] = "0.02"
    with pytest.raises(ValidationError, match=r"on every check point or on none.*checks\[1\]"):
        parse_certificate(ver_data)


# --- the MPE table -------------------------------------------------------------------------


def test_shipped_rules_cite_a_procedure_per_row() -> None:
    assert RULES.rules and all(r.procedure for r in RULES.rules)
    (dispenser,) = RULES.for_type("cot-do-xang-dau", "0.5")
    assert dispenser.rates == (Decimal("0.5"),) and dispenser.unit == "% of volume"
    assert "ĐLVN 10:2017" in dispenser.procedure


def test_a_bad_rules_table_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\ntype = "x"\naccuracy_class = "1"\nunit = "L"\nmpe = ["1"]\nprocedure = "p"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"rules.toml: \[\[rule\]\] number 1: unit must be"):
        load_mpe_rules(path)


def test_typed_mpe_against_the_accuracy_class(ver_data: dict[str, Any]) -> None:
    assert contradictions(_ver(ver_data), "cot-do-xang-dau", RULES) == []
    ver_data["checks"][1] = {"nominal": "20", "error": "1.5", "mpe": "2", "unit": "L"}  # 7.5 %
    (line,) = contradictions(_ver(ver_data), "cot-do-xang-dau", RULES)
    assert line == (
        "checks[1] (20 L): typed MPE 2 L, but ĐLVN 10:2017 (OIML R 117-1, accuracy class 0.5) "
        "gives ±0.5 % of volume = 0.1 L for class 0.5"
    )
    assert contradictions(_ver(ver_data), None, RULES) == []  # type unknown


def test_relative_range_mpe_against_the_class(ver_data: dict[str, Any]) -> None:
    ver_data["ranges"][0]["mpe"] = "1"
    (line,) = contradictions(_ver(ver_data), "cot-do-xang-dau", RULES)
    assert line.startswith("ranges[0]: typed MPE 1 % of volume") and "ĐLVN 10:2017" in line


def test_water_meter_mpe_is_one_of_its_zones(ver_data: dict[str, Any]) -> None:
    ver_data["ranges"] = [
        {"lower": "0.03", "upper": "3.125", "unit": "m³/h", "accuracy_class": "2"}
    ]
    ver_data["checks"] = [
        {"nominal": "100", "error": "1", "mpe": "2", "mpe_unit": "% of volume", "unit": "L"},
        {"nominal": "10", "error": "0.3", "mpe": "5", "mpe_unit": "% of volume", "unit": "L"},
        {"nominal": "10", "error": "0.3", "mpe": "4", "mpe_unit": "% of volume", "unit": "L"},
    ]
    (line,) = contradictions(_ver(ver_data), "dong-ho-nuoc-co", RULES)
    assert line.startswith("checks[2] (10 L): typed MPE 4 % of volume = 0.4 L")
    assert "ĐLVN 17:2017" in line and "0.2 L or 0.5 L" in line


def test_scale_mpe_in_scale_intervals(ver_data: dict[str, Any]) -> None:
    scale = {"lower": "0", "upper": "150", "unit": "kg", "scale_interval": "0.05"}
    ver_data.update(mode="initial", ranges=[{**scale, "accuracy_class": "III"}])
    ver_data["checks"] = [
        {"nominal": "20", "error": "0", "mpe": "0.025", "unit": "kg"},  # 400 e: ±0.5 e
        {"nominal": "100", "error": "0", "mpe": "0.05", "unit": "kg"},  # 2000 e: ±1 e
        {"nominal": "150", "error": "0", "mpe": "0.05", "unit": "kg"},  # 3000 e: ±1.5 e
    ]
    (line,) = contradictions(_ver(ver_data), "can-ban", RULES)
    assert line.startswith("checks[2] (150 kg): typed MPE 0.05 kg") and "= 0.075 kg" in line
    ver_data["mode"] = "periodic"  # the rows apply to initial verification only
    assert contradictions(_ver(ver_data), "can-ban", RULES) == []


# --- issuing (SQLite and PostgreSQL: a refused record takes no number) ---------------------


@pytest.fixture
def any_issuer(
    settings: Any, any_ledger_url: str, sealer: Any, renderer: Any, tmp_path: Path
) -> Any:
    from certissuer.issue import Issuer, load_token_key
    from certissuer.ledger import Ledger

    return Issuer(
        settings.replace(ledger_url=any_ledger_url),
        ledger=Ledger.open(any_ledger_url),
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )


def test_issue_refuses_a_typed_mpe_the_class_contradicts(
    any_issuer: Any, ver_data: dict[str, Any]
) -> None:
    issuer = any_issuer
    ver_data["checks"][1] = {"nominal": "20", "error": "1.5", "mpe": "2", "unit": "L"}
    with pytest.raises(IssueRefused, match=r"checks\[1\] \(20 L\): typed MPE 2 L") as caught:
        issuer.check(parse_certificate(ver_data))
    assert caught.value.exit_code == 9 and "mpe_rules.toml" in (caught.value.hint or "")
    assert issuer.ledger.count() == 0


def test_issue_refuses_an_indeterminate_check(any_issuer: Any, ver_data: dict[str, Any]) -> None:
    issuer = any_issuer
    data = _with_u(ver_data)
    data["checks"][2]["error"] = "0.09"  # MPE 0.10 − U 0.02 < 0.09: in the guard band
    with pytest.raises(
        IssueRefused,
        match=r"indeterminate \(check 3 \(20 L: .*U 0.02 L.*: indeterminate\)\): an error lies "
        r"in the guard band",
    ):
        issuer.check(parse_certificate(data))
    assert issuer.ledger.count() == 0


# --- on the page ---------------------------------------------------------------------------


def _text(data: dict[str, Any], tmp_path: Path) -> str:
    from certissuer.render import Renderer

    pdf = Renderer().render_pdf(
        parse_certificate(data),
        number="KĐ-2026-000009",
        issued=_ver(data).verification_date,
        qr_url="https://kiemdinh.example.vn/v/x",
        settings=lab_settings(),
    )
    path = tmp_path / "v.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


@needs_poppler
def test_page_prints_simple_acceptance_and_mpe_in_its_unit(
    ver_data: dict[str, Any], tmp_path: Path
) -> None:
    text = _text(ver_data, tmp_path)
    assert "± 0.5 % thể tích / % of volume" in text
    assert "0.01 L" in text and "0.01 L/min" not in text and "± 0.5 L/min" not in text
    assert "Quy tắc quyết định" in text and "Decision rule" in text
    assert "Chấp nhận đơn giản theo quy trình kiểm định: đạt khi |sai số| ≤ MPE" in text
    assert "Simple acceptance per the verification procedure: pass when |error| ≤ MPE" in text


@needs_poppler
def test_page_prints_guarded_acceptance_with_tur(ver_data: dict[str, Any], tmp_path: Path) -> None:
    text = _text(_with_u(ver_data), tmp_path)
    assert "Chấp nhận có dải bảo vệ theo ILAC-G8:09/2019" in text
    assert (
        "không xác định được" in text and "indeterminate when MPE − U < |error| ≤ MPE + U" in text
    )
    assert "TUR = MPE/U, lowest: 5.0" in text and "nhỏ nhất: 5,0" in text
    assert "Uncertainty U" in text


# --- calibration conformity, computed ------------------------------------------------------


def _conformity(cal_data: dict[str, Any], **spec: str) -> dict[str, Any]:
    return {**cal_data, "conformity": {"decision_rule": "simple", "mpe": "0.0001", **spec}}


def test_conformity_is_computed_from_the_results(cal_data: dict[str, Any]) -> None:
    # errors up to 0.00031 g (U 0.00019 g there) against an MPE of 0.0001 g, then 0.0004 g
    cert = _cal(_conformity(cal_data))
    assert cert.conformity_verdict is Verdict.FAIL
    cert = _cal(_conformity(cal_data, mpe="0.0004"))
    assert cert.conformity_verdict is Verdict.PASS
    guarded = _cal(_conformity(cal_data, mpe="0.0004", decision_rule="guarded"))
    assert guarded.conformity_verdict is Verdict.INDETERMINATE  # 0.00031 > 0.0004 − 0.00019


def test_typed_conformity_that_disagrees_is_refused(cal_data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="claims 'conforms', but the results give 'does"):
        parse_certificate(_conformity(cal_data, statement="Phù hợp cấp E2 / Conforms to E2"))
    cert = _cal(_conformity(cal_data, statement="Không phù hợp / Does not conform"))
    assert cert.conformity_verdict is Verdict.FAIL


def test_computed_conformity_names_its_rule(cal_data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="expected decision_rule 'simple' or 'guarded'"):
        parse_certificate(_conformity(cal_data, decision_rule="Chấp nhận đơn giản"))
    without_nominal = {**cal_data, "results": [{**r, "nominal": None} for r in cal_data["results"]]}
    with pytest.raises(ValidationError, match=r"results\[0\] has no error"):
        parse_certificate(_conformity(without_nominal))


@needs_poppler
def test_page_prints_the_computed_conformity_and_its_rule(
    cal_data: dict[str, Any], tmp_path: Path
) -> None:
    from certissuer.render import Renderer

    data = _conformity(cal_data, mpe="0.0004", statement="Cấp E2 / Class E2")
    cert = _cal(data)
    pdf = Renderer().render_pdf(
        cert, number="HC-1", issued=cert.calibrated, qr_url="https://x.vn/v/x",
        settings=lab_settings(),
    )  # fmt: skip
    path = tmp_path / "c.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    text = " ".join(out.stdout.split())
    assert "Phù hợp / Conforms: Cấp E2 / Class E2" in text
    assert "Yêu cầu / Requirement: |sai số / error| ≤ 0.0004 g" in text
    assert "Simple acceptance per ILAC-G8:09/2019 §4.2.1 (w = 0)" in text
