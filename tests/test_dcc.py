"""DCC 3.1.2 XML: export valid against the official schemas, exact round trip, hardened import,
embedding under the signature, and `verify` checking the embedded DCC against the ledger.

The schemas are used in place (``shared/schemas/dcc`` beside the project, or
``$CERTISSUER_DCC_SCHEMA_DIR``); each export is checked by certissuer's own validator (lxml) and
again by xmlschema, built once per session, as the schemas' README describes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from datetime import date
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

import pypdf
import pytest
from pydantic import BaseModel
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from typer.testing import CliRunner

from certissuer import dcc, intake
from certissuer.cli import app
from certissuer.config import Settings, load_settings
from certissuer.dcc import write as dcc_write
from certissuer.errors import ConfigError, InputError, InputErrors
from certissuer.intake import validate as intake_validate
from certissuer.issue import Issuer
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import (
    CalibrationCertificate,
    VerificationCertificate,
    canonical_json,
    data_digest,
    parse_certificate,
)
from certissuer.model import units as model_module
from certissuer.verify import Verdict, Verifier

from .conftest import PASSPHRASE, SAMPLES, lab_settings

SCHEMA_DIR = dcc.find_schema_dir()
pytestmark = pytest.mark.skipif(
    SCHEMA_DIR is None and not os.environ.get("CI"),
    reason="the DCC schemas (shared/schemas/dcc or $CERTISSUER_DCC_SCHEMA_DIR) are not here",
)
NUMBER = "HC-2026-000042"
ROOT = "<dcc:digitalCalibrationCertificate"


@pytest.fixture(scope="session")
def schema() -> dcc.Schema:
    assert SCHEMA_DIR is not None, "CI must have the DCC schemas beside the project"
    return dcc.Schema.load(SCHEMA_DIR)


_XMLSCHEMA_CHECK = """
import sys, xmlschema
folder, *paths = sys.argv[1:]
xsd = xmlschema.XMLSchema(
    folder + "/dcc-3.1.2.xsd", locations={"https://ptb.de/si": folder + "/SI_Format-2.1.0.xsd"}
)
for path in paths:
    for error in xsd.iter_errors(path):
        print(path, error.path, error.reason)
"""


def _xmlschema_errors(paths: list[Path]) -> list[str]:
    """Validate with xmlschema, as the schemas' README says: a validator independent of lxml.

    In a fresh interpreter: once zope.interface (imported by z3c.rml for rendering) is loaded,
    xmlschema 4 cannot build a schema ("AttributeError: __provides__").
    """
    assert SCHEMA_DIR is not None
    done = subprocess.run(
        [sys.executable, "-c", _XMLSCHEMA_CHECK, str(SCHEMA_DIR), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _sample_certs() -> list[tuple[str, Any]]:
    return [
        (f"{name}:{record.row}", record.cert)
        for name in ("calibration.json", "verification.json", "batch.csv", "batch.xlsx")
        for record in intake.read_certificates(SAMPLES / name)
    ]


SAMPLE_CERTS = _sample_certs()


def _maximal() -> list[Any]:
    """One certificate of each kind with every optional field set, odd decimals and units."""
    cal = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    cal.update(
        ref="HC-MAX-1",
        language_note="Bản dịch tiếng Anh chỉ để tham khảo / English for reference only",
        deviations="Nhiệt độ ngoài phạm vi / Temperature outside the range",
        conformity={
            "statement": "Phù hợp cấp E2 / Conforms to class E2",
            "decision_rule": "ILAC-G8:09/2019 §4.2.1 (simple acceptance)",
        },
        valid_until="2027-11-23",
        replaces={"number": "HC-2026-000007", "reason": "Sai số hiệu / Wrong serial"},
        conditions={
            "temperature": "20.00",
            "temperature_uncertainty": "0.0",
            "humidity": "45.5",
            "humidity_uncertainty": "1E+1",
        },
    )
    cal["item"]["condition"] = "Có vết xước\r\nScratched  "  # CR LF inside, trimmed at the end
    cal["results"] = [
        {"quantity": "", "measured": "-0.000", "uncertainty": "1E-8", "unit": "μg"},
        {
            "quantity": "Áp suất / Pressure",
            "nominal": "100.0",
            "measured": "100.02",
            "error": "0.020",
            "uncertainty": "0.10",
            "coverage_factor": "2.00",
            "unit": "kPa",
            "stage": "before",
        },
        {
            "nominal": "1",
            "measured": "1.000",
            "uncertainty": "0.5",
            "coverage_factor": "1.96",
            "coverage_probability": "0.95",
            "unit": "m2",
            "stage": "after",
        },
        {
            "measured": "55",
            "uncertainty": "3",
            "coverage_factor": "3",
            "coverage_probability": "0.9973",
            "unit": "%RH",
            "resolution": "1",
        },
        {
            "measured": "1500",
            "uncertainty": "2",
            "unit": "vòng/phút",
            "extra": {"Nhiệt độ khí (°C)": "20.0 ± 0.1", "Gas flow (L/min)": "1.2"},
        },
        {
            "measured": "12.5",
            "uncertainty": "0.2",
            "unit": "L/min",
            "extra": {"Gas flow (L/min)": "1.3"},
        },
        {"measured": "7.8", "uncertainty": "0.1", "unit": "kg/m³"},
        {
            "measured": "21.0",
            "uncertainty": "0.3",
            "coverage_factor": "2.5",
            "coverage_probability": "0.988",
            "unit": "°C",
        },
        {
            "measured": "3.3",
            "uncertainty": "0.2",
            "coverage_factor": "2.37",
            "unit": "L",
            "degrees_of_freedom": "8",
        },
    ]
    cal["standards"].append(
        {
            "name": "Nhiệt kế / Thermometer",
            "certificate_number": "T-1",
            "calibration_due": "2027-01-31",
            "traceable_to": "si",
            "calibrated_by": "PTB (Đức / Germany)",
        }
    )
    cal.update(
        external_provider="Phòng thí nghiệm X / Laboratory X (VILAS 999)",
        customer_supplied=["item.serial", "place_of_calibration"],
        source_notes=["performed 2026-03-01 … 2026-03-03 (calibration date: 2026-03-03)"],
        extra_columns=[
            {"name": "Nhiệt độ khí (°C)", "vi": "Nhiệt độ khí (°C)", "en": "Gas temperature (°C)"},
            {"name": "Gas flow (L/min)"},
        ],
    )
    ver = json.loads((SAMPLES / "verification.json").read_text(encoding="utf-8"))
    ver.update(
        ref="KD-MAX-1",
        language_note="Ghi chú / Note",
        mode="after_repair",
        replaces={"number": "KĐ-2026-000001", "reason": "Sai ngày / Wrong date"},
    )
    ver["instrument"]["condition"] = "Mới sửa / Just repaired"
    ver["ranges"] = [
        {"lower": "0", "upper": "60", "unit": "L/min", "scale_interval": "0.01", "mpe": "0.5"},
        {"lower": "-10", "upper": "1E+2", "unit": "°C", "accuracy_class": "A"},
        {
            "lower": "5", "upper": "50", "unit": "L/min", "scale_interval": "0.01",
            "scale_interval_unit": "L", "mpe": "0.5", "mpe_unit": "% of volume",
        },
    ]  # fmt: skip
    ver["checks"] = [
        {"nominal": "20", "error": "-0.10", "mpe": "0.10", "unit": "L", "uncertainty": "0.01"},
        {"nominal": "5.0", "error": "0", "mpe": "0.5", "unit": "mL", "uncertainty": "0.05"},
        {
            "nominal": "20", "error": "0.02", "mpe": "0.5", "mpe_unit": "% of volume",
            "unit": "L", "uncertainty": "0.01",
        },
    ]  # fmt: skip
    computed = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    computed.update(  # a conformity computed from the results (issue 16)
        ref="HC-MAX-2",
        conformity={
            "statement": "Cấp E2 / Class E2",
            "decision_rule": "guarded",
            "mpe": "0.001",
            "mpe_unit": "% of reading",
        },
    )
    return [parse_certificate(cal), parse_certificate(ver), parse_certificate(computed)]


MAXIMAL = _maximal()


@pytest.fixture
def lab() -> Settings:
    return lab_settings(
        lab_address_vi="Số 1, Đồng Tháp",
        lab_address_en="No. 1, Dong Thap",
        lab_accreditation="VILAS 999",
    )


# --- export: valid against the official schema ---------------------------------------------


@pytest.mark.parametrize(("name", "cert"), SAMPLE_CERTS + [("max", c) for c in MAXIMAL])
def test_every_sample_exports_valid_dcc(
    name: str, cert: Any, lab: Settings, schema: dcc.Schema
) -> None:
    xml = dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema)  # validated (lxml)
    text = xml.decode("utf-8")
    assert 'schemaVersion="3.1.2"' in text
    assert f"<dcc:uniqueIdentifier>{NUMBER}</dcc:uniqueIdentifier>" in text
    entries = cert.results if isinstance(cert, CalibrationCertificate) else cert.checks
    for entry in entries:
        assert f"<si:unit>{dcc.dsi_unit(entry.unit)}</si:unit>" in text
    if isinstance(cert, CalibrationCertificate):
        for m in cert.results:
            assert f"<si:uncertainty>{m.uncertainty}</si:uncertainty>" in text
            assert f"<si:coverageFactor>{m.coverage_factor}</si:coverageFactor>" in text
        assert cert.standards[0].certificate_number in text
    else:
        assert "<dcc:conformity>pass</dcc:conformity>" in text


def test_every_sample_export_passes_xmlschema_too(
    lab: Settings, schema: dcc.Schema, tmp_path: Path
) -> None:
    paths = []
    for index, (_, cert) in enumerate(SAMPLE_CERTS + [("max", c) for c in MAXIMAL]):
        path = tmp_path / f"{index}.xml"
        path.write_bytes(dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema))
        paths.append(path)
    assert _xmlschema_errors(paths) == []
    # and it does find errors: a coverage factor below 1, as si:kValueType forbids
    bad = tmp_path / "bad.xml"
    bad.write_text(
        paths[0]
        .read_text(encoding="utf-8")
        .replace(
            "<si:coverageFactor>2</si:coverageFactor>", "<si:coverageFactor>0.5</si:coverageFactor>"
        ),
        encoding="utf-8",
    )
    assert any("coverageFactor" in line for line in _xmlschema_errors([bad]))


def test_sample_calibration_units_and_uncertainty(
    cal_cert: Any, lab: Settings, schema: dcc.Schema
) -> None:
    text = dcc.to_xml(cal_cert, number=NUMBER, settings=lab, schema=schema).decode()
    assert "<si:value>10.00003</si:value>" in text and "<si:unit>\\gram</si:unit>" in text
    assert "<si:coverageProbability>0.95</si:coverageProbability>" in text
    assert "<si:value>21.3</si:value>" in text and "\\degreecelsius" in text  # conditions


def test_invalid_output_is_never_returned(
    cal_cert: Any, lab: Settings, schema: dcc.Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A coverage factor below 1 breaks si:kValueType; the intake refuses it, so forcing it
    # past the model shows that to_xml validates rather than trusting its input.
    bad = cal_cert.model_copy(
        update={
            "results": [
                cal_cert.results[0].model_copy(
                    update={
                        "coverage_factor": Decimal("0.5"),
                        "coverage_probability": Decimal("0.38"),
                    }
                )
            ]
        }
    )
    with pytest.raises(dcc.DccError, match=r"not valid against dcc-3\.1\.2\.xsd.*coverageFactor"):
        dcc.to_xml(bad, number=NUMBER, settings=lab, schema=schema)


# --- round trip ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cert"), SAMPLE_CERTS + [("max", c) for c in MAXIMAL])
def test_round_trip_is_identical(name: str, cert: Any, lab: Settings, schema: dcc.Schema) -> None:
    xml = dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema)
    back = dcc.read_certificate(xml, schema=schema)
    assert back == cert
    assert canonical_json(back) == canonical_json(cert)  # Decimal digits, units, uncertainties
    assert data_digest(back) == data_digest(cert)
    if isinstance(cert, CalibrationCertificate):
        for before, after in zip(cert.results, back.results, strict=True):
            assert isinstance(after.measured, Decimal)
            assert str(after.measured) == str(before.measured)
            assert str(after.uncertainty) == str(before.uncertainty)
            assert after.unit == before.unit


def _fields(value: Any, seen: set[tuple[str, str]]) -> None:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name in value.model_fields_set and item not in (None, "", []):
                seen.add((type(value).__name__, name))
            _fields(item, seen)
    elif isinstance(value, list):
        for item in value:
            _fields(item, seen)


def _all_fields(cls: type[BaseModel], out: set[tuple[str, str]]) -> None:
    for name, info in cls.model_fields.items():
        if name == "kind":
            continue
        out.add((cls.__name__, name))
        sub = intake_validate.submodel(info.annotation)
        if sub is not None:
            _all_fields(sub, out)


def test_round_trip_covers_every_model_field() -> None:
    # A field added to the model must be given a place in the DCC (and in MAXIMAL): until then
    # this names it.
    expected: set[tuple[str, str]] = set()
    _all_fields(CalibrationCertificate, expected)
    _all_fields(VerificationCertificate, expected)
    seen: set[tuple[str, str]] = set()
    for cert in MAXIMAL:
        _fields(cert, seen)
    assert expected - seen == set()


def test_unchanged_document_exports_the_same_bytes(
    cal_cert: Any, lab: Settings, schema: dcc.Schema
) -> None:
    first = dcc.to_xml(cal_cert, number=NUMBER, settings=lab, schema=schema)
    again = dcc.to_xml(
        parse_certificate(json.loads(canonical_json(cal_cert))),
        number=NUMBER,
        settings=lab,
        schema=schema,
    )
    assert first == again


# --- units ---------------------------------------------------------------------------------

UNSUPPORTED = {"var", "kvarh", "pH", "°Bx", "kgf/cm²"}


def test_every_legal_unit_maps_to_dsi_and_back() -> None:
    plain, prefixable = model_module._PLAIN, model_module._PREFIXABLE
    symbols = set(plain) | set(prefixable)
    symbols |= {p + b for p in model_module._SI_PREFIXES for b in prefixable}
    mapped = 0
    for symbol in sorted(symbols):
        if not model_module.is_legal_unit(symbol):
            continue
        dsi = dcc.dsi_unit(symbol)
        base = symbol if symbol in plain or symbol in prefixable else None
        if dsi is None:
            # no D-SI form: the documented few, a prefix on them, or on kg/m³ (two prefixes)
            assert (
                base in UNSUPPORTED
                or any(symbol.endswith(u) for u in UNSUPPORTED)
                or symbol.endswith(("kg/m³", "kg/m3"))
            ), symbol
            continue
        mapped += 1
        assert re.fullmatch(r"(\\[a-z]+(\{-?\d+\})?)+", dsi), (symbol, dsi)
        back = dcc.unit_symbol(dsi)
        assert back is not None and dcc.dsi_unit(back) == dsi, (symbol, dsi, back)
    assert mapped > 700


@pytest.mark.parametrize(
    ("symbol", "dsi"),
    [
        ("kg", r"\kilogram"),
        ("mg", r"\milli\gram"),
        ("g", r"\gram"),
        ("°C", r"\degreecelsius"),
        ("L/min", r"\litre\per\minute"),
        ("bar", r"\bar"),
        ("kPa", r"\kilo\pascal"),
        ("%", r"\percent"),
        ("m³/h", r"\metre\tothe{3}\per\hour"),
        ("kg/cm³", r"\kilogram\per\centi\metre\tothe{3}"),
        ("µm", r"\micro\metre"),
        ("kWh", r"\kilo\watt\hour"),
        ("mkg/m³", None),
        ("kgf/cm²", None),
        ("lbs", None),
    ],
)
def test_dsi_unit(symbol: str, dsi: str | None) -> None:
    assert dcc.dsi_unit(symbol) == dsi


@pytest.mark.parametrize(
    ("fmt", "where"),
    [
        ("json", r"calibration\.json, row 1, field 'results\[1\]\.unit'"),
        ("csv", r"batch\.results\.csv, row 3, field 'unit'"),
    ],
)
def test_unit_without_dsi_form_is_refused_at_intake(tmp_path: Path, fmt: str, where: str) -> None:
    if fmt == "json":
        data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
        data["results"][1]["unit"] = "kgf/cm²"
        path = tmp_path / "calibration.json"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    else:
        for f in SAMPLES.glob("batch*.csv"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
        table = tmp_path / "batch.results.csv"
        lines = table.read_text(encoding="utf-8").splitlines()
        lines[2] = lines[2].replace(",g", ",kgf/cm²")
        table.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path = tmp_path / "batch.csv"
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    assert len(info.value.errors) == 1
    assert re.search(rf"{where}: 'kgf/cm²' has no D-SI form", str(info.value))


def test_coverage_factor_below_one_and_control_characters_refused_at_intake(
    tmp_path: Path,
) -> None:
    data = json.loads((SAMPLES / "calibration.json").read_text(encoding="utf-8"))
    data["results"][0]["coverage_factor"] = "0.5"
    data["results"][0]["coverage_probability"] = "0.383"
    data["item"]["model"] = "XPR\x07205"
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(InputErrors) as info:
        intake.read_certificates(path)
    fields = {e.field: e.problem for e in info.value.errors}
    assert "at least 1" in fields["results[0].coverage_factor"]
    assert "control character" in fields["item.model"]


# --- XML as input --------------------------------------------------------------------------


def _export(cert: Any, lab: Settings, schema: dcc.Schema, path: Path) -> str:
    path.write_bytes(dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema))
    return path.read_text(encoding="utf-8")


def test_intake_reads_a_dcc_document(
    tmp_path: Path, lab: Settings, schema: dcc.Schema, cal_cert: Any
) -> None:
    path = tmp_path / "cert.XML"  # any letter case
    _export(cal_cert, lab, schema, path)
    [record] = intake.read_certificates(path)
    assert record.cert == cal_cert and record.row == 1 and record.source == str(path)


def test_shipped_dcc_sample_is_the_calibration_sample() -> None:
    [record] = intake.read_certificates(SAMPLES / "calibration.dcc.xml")
    [json_record] = intake.read_certificates(SAMPLES / "calibration.json")
    assert record.cert == json_record.cert


def _line_of(text: str, needle: str, occurrence: int = 1) -> int:
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    return text.count("\n", 0, at) + 1


def test_bad_value_names_file_line_and_field(
    tmp_path: Path, lab: Settings, schema: dcc.Schema, cal_cert: Any
) -> None:
    path = tmp_path / "cert.xml"
    text = _export(cal_cert, lab, schema, path)
    # valid for the schema (an uncertainty may be 0 in D-SI), not for a certificate
    text = text.replace(
        "<si:uncertainty>0.000081</si:uncertainty>", "<si:uncertainty>0</si:uncertainty>"
    )
    text = text.replace("<dcc:receiptDate>2026-11-20", "<dcc:receiptDate>2026-11-30")
    path.write_text(text, encoding="utf-8")
    records = list(intake.iter_records(path))
    assert isinstance(records[0], intake.Rejected)
    messages = [str(e) for e in records[0].errors]
    line = _line_of(text, "<si:expandedUnc>", 2)
    assert (
        f"{path}, line {line}, field 'results[1].uncertainty': expected a positive number, got '0'"
        in messages
    )
    end = _line_of(text, "<dcc:endPerformanceDate>")
    assert any(m.startswith(f"{path}, line {end}, field 'calibrated'") for m in messages), messages


def test_schema_violation_names_the_line(
    tmp_path: Path, lab: Settings, schema: dcc.Schema, cal_cert: Any
) -> None:
    path = tmp_path / "cert.xml"
    text = _export(cal_cert, lab, schema, path).replace(
        "<si:value>10.00003</si:value>", "<si:value>10,00003</si:value>"
    )
    path.write_text(text, encoding="utf-8")
    [rejected] = list(intake.iter_records(path))
    assert isinstance(rejected, intake.Rejected)
    line = _line_of(text, "10,00003")
    assert str(rejected.errors[0]).startswith(
        f"{path}, line {line}: not valid against the DCC 3.1.2 schema: Element 'si:value': "
        "'10,00003' is not a valid value"
    )


def test_unknown_dsi_unit_names_line_and_field(
    tmp_path: Path, lab: Settings, schema: dcc.Schema, cal_cert: Any
) -> None:
    path = tmp_path / "cert.xml"
    text = _export(cal_cert, lab, schema, path)
    text = text.replace("<si:unit>\\gram</si:unit>", "<si:unit>\\pound</si:unit>")
    path.write_text(text, encoding="utf-8")
    [rejected] = list(intake.iter_records(path))
    assert isinstance(rejected, intake.Rejected)
    assert len(rejected.errors) == 4  # one per result, no follow-up "missing" noise
    assert re.match(
        rf"{re.escape(str(path))}, line \d+, field 'results\[0\]\.unit': the D-SI unit "
        r"'\\pound' is not one certissuer can print",
        str(rejected.errors[0]),
    )


def _refused(path: Path) -> InputError:
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        list(intake.iter_records(path))
    assert time.monotonic() - start < 2, "refusing should be quick"
    return info.value


def test_broken_xml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<dcc:digitalCalibrationCertificate xmlns:dcc="https://ptb.de/dcc"'
        ' schemaVersion="3.1.2">\n  <dcc:administrativeData>\n'
        "</dcc:digitalCalibrationCertificate>\n",
        encoding="utf-8",
    )
    error = _refused(path)
    assert str(error).startswith(f"{path}, line 4: not well-formed XML:")


@pytest.mark.parametrize("doctype", ["entity", "external_dtd", "billion_laughs"])
def test_doctype_and_entities_are_refused_without_reading_them(
    tmp_path: Path, doctype: str
) -> None:
    # The entity and the DTD point at a FIFO: a parser that opened it would block until a
    # writer came, which the watchdog below would notice.
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    head = {
        "entity": f'<!DOCTYPE dcc:digitalCalibrationCertificate [<!ENTITY x SYSTEM "file://{fifo}">]>',
        "external_dtd": f'<!DOCTYPE dcc:digitalCalibrationCertificate SYSTEM "file://{fifo}">',
        "billion_laughs": '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(c + 1)} "{("&" + chr(c) + ";") * 10}">' for c in range(97, 105))
        + "]>",
    }[doctype]
    body = "&x;" if doctype == "entity" else ("&i;" if doctype == "billion_laughs" else "")
    path = tmp_path / "evil.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n{head}\n<dcc:digitalCalibrationCertificate '
        f'xmlns:dcc="https://ptb.de/dcc" schemaVersion="3.1.2">{body}'
        "</dcc:digitalCalibrationCertificate>\n",
        encoding="utf-8",
    )
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            list(intake.iter_records(path))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():
        with open(fifo, "w") as unblock:  # let the parser go, then fail
            unblock.write("x")
        pytest.fail("the parser opened the file the DOCTYPE points at")
    assert isinstance(outcome[0], InputError), outcome
    assert "DOCTYPE declaration: DTDs and entities are not allowed" in str(outcome[0])


@pytest.mark.parametrize(
    ("root", "message"),
    [
        (
            f'{ROOT} xmlns:dcc="https://ptb.de/dcc" schemaVersion="2.4.0">',
            "a DCC of schema version 2.4.0: certissuer reads DCC 3.0, 3.1, 3.2, 3.3",
        ),
        (
            f'{ROOT} xmlns:dcc="https://ptb.de/dcc">',
            "a DCC of schema version (none)",
        ),
        (
            f'{ROOT} xmlns:dcc="https://ptb.de/dcc/v2" schemaVersion="3.1.2">',
            "not a DCC document",
        ),
    ],
)
def test_wrong_schema_version_or_namespace_is_refused(
    tmp_path: Path, root: str, message: str
) -> None:
    path = tmp_path / "other.xml"
    path.write_text(f"{root}</dcc:digitalCalibrationCertificate>", encoding="utf-8")
    error = _refused(path)
    assert str(error).startswith(f"{path}, line 1: {message}")


def test_100_mb_document_is_refused_before_reading(tmp_path: Path, pki: KeyPaths) -> None:
    path = tmp_path / "huge.xml"
    with open(path, "wb") as f:  # sparse: 100 MB that take no disk
        f.write(b"<?xml version='1.0'?>")
        f.truncate(100 * 1024 * 1024)
    start = time.monotonic()
    with pytest.raises(InputError, match=r"the file is 100 MB, more than the limit of 25 MB"):
        intake.iter_records(path)  # at once: before iterating, before reading
    assert time.monotonic() - start < 0.5
    big = b"<a>" + b" " * (100 * 1024 * 1024) + b"</a>"
    with pytest.raises(InputError, match="more than the limit"):
        dcc.read_document(big, where="big.xml")
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[signing]\npkcs12 = "{pki.signer_p12}"\n[token]\nkey = "{pki.token_key}"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app,
        ["--config", str(profile), "issue", "-o", str(tmp_path / "out"), str(path)],
        env={"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()},
    )
    assert result.exit_code == 2 and "more than the limit of 25 MB" in result.stderr


# --- embedded in the signed PDF ------------------------------------------------------------


@pytest.fixture
def issued(issuer: Issuer, cal_cert: Any) -> Any:
    return issuer.issue(cal_cert)


def test_embedded_dcc_is_byte_identical_to_export(
    issued: Any, issuer: Issuer, settings: Settings, ledger: Ledger
) -> None:
    reader = pypdf.PdfReader(issued.path)  # an independent PDF library
    attachments = reader.attachments
    name = "HC-2026-000001.dcc.xml"
    assert list(attachments) == [name] and len(attachments[name]) == 1
    exported = dcc.export_entry(ledger.get(issued.number), settings)
    assert attachments[name][0] == exported
    root = reader.trailer["/Root"]
    [spec] = [ref.get_object() for ref in root["/AF"]]
    assert spec["/AFRelationship"] == "/Source"
    assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/application/xml"
    assert str(root.get("/Version", "/1.7")) != "/2.0" and "/Metadata" not in root
    assert dcc.read_certificate(exported) == parse_certificate(ledger.get(issued.number).data())


def test_cli_extract_and_export_agree(
    issued: Any, settings: Settings, tmp_path: Path, pki: KeyPaths
) -> None:
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "T01"\nname_vi = "{settings.lab_name_vi}"\n'
        f'name_en = "{settings.lab_name_en}"\n'
        f'[signing]\ntrust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'[ledger]\nurl = "{settings.ledger_url}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    extracted = runner.invoke(app, ["--config", str(profile), "dcc", "extract", str(issued.path)])
    assert extracted.exit_code == 0, extracted.stderr
    out = tmp_path / "export.xml"
    exported = runner.invoke(
        app, ["--config", str(profile), "dcc", "export", issued.number, "-o", str(out)]
    )
    assert exported.exit_code == 0, exported.stderr
    assert extracted.stdout_bytes == out.read_bytes()
    verified = runner.invoke(app, ["--config", str(profile), "verify", str(issued.path)])
    assert verified.exit_code == 0 and "embedded DCC: matches the ledger's data" in verified.stdout
    missing = runner.invoke(app, ["--config", str(profile), "dcc", "export", "HC-2026-999999"])
    assert missing.exit_code == 7 and "not in the ledger" in missing.stderr


def test_issue_accepts_a_dcc_document(
    tmp_path: Path, pki: KeyPaths, lab: Settings, schema: dcc.Schema, ver_cert: Any
) -> None:
    source = tmp_path / "in.xml"
    _export(ver_cert, lab, schema, source)
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "X1"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n',
        encoding="utf-8",
    )
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["--config", str(profile), "issue", "--json", "-o", str(tmp_path / "out"), str(source)],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    [done] = json.loads(result.stdout)["issued"]
    extracted = runner.invoke(
        app, ["--config", str(profile), "dcc", "extract", done["entry"]["pdf_path"]]
    )
    assert dcc.read_certificate(extracted.stdout_bytes) == ver_cert


def _embedded_stream(data: bytes) -> tuple[int, int]:
    """Start and end of the embedded DCC's compressed bytes in the file."""
    reader = pypdf.PdfReader(BytesIO(data))
    spec = reader.trailer["/Root"]["/AF"][0].get_object()
    ref = spec["/EF"].raw_get("/F")
    match = re.search(rb"\n%d 0 obj.*?stream\r?\n" % ref.idnum, data, re.S)
    assert match is not None
    return match.end(), data.index(b"endstream", match.end())


def test_flipped_byte_in_embedded_dcc_is_altered(issued: Any, verifier: Verifier) -> None:
    data = issued.path.read_bytes()
    start, end = _embedded_stream(data)
    at = (start + end) // 2
    tampered = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    report = verifier.verify_pdf(tampered)
    assert report.verdict is Verdict.ALTERED, report.reasons


def test_replacing_embedded_dcc_after_signing_is_altered(
    issued: Any, verifier: Verifier, lab: Settings, schema: dcc.Schema, cal_cert: Any
) -> None:
    data = issued.path.read_bytes()
    forged = cal_cert.model_copy(
        update={
            "results": [cal_cert.results[0].model_copy(update={"measured": Decimal("10.00000")})]
        }
    )
    xml = dcc.to_xml(forged, number=issued.number, settings=lab, schema=schema)
    writer = IncrementalPdfFileWriter(BytesIO(data))
    spec = writer.root["/AF"][0].get_object()
    ref = spec["/EF"].raw_get("/F")
    stream = ref.get_object()
    stream._data, stream._encoded_data = xml, None
    stream.compress()
    writer.mark_update(ref)
    out = BytesIO()
    writer.write(out)
    assert dcc.extract(out.getvalue()) == xml  # the forged DCC is what a reader now gets
    report = verifier.verify_pdf(out.getvalue())
    assert report.verdict is Verdict.ALTERED, report.reasons


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("data", "embedded DCC does not match the ledger's data digest"),
        ("number", "embedded DCC names certificate HC-2026-000777, the ledger entry is"),
        ("garbage", "embedded DCC cannot be read"),
    ],
)
def test_lab_signed_dcc_that_differs_from_ledger_is_altered(
    issuer: Issuer,
    verifier: Verifier,
    cal_cert: Any,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    reason: str,
) -> None:
    # Signed by the lab and in the ledger, but the DCC says something else (a bug or an
    # insider): only the DCC check can tell.
    assert issuer.dcc is not None
    real_xml = issuer.dcc.xml
    other = cal_cert.model_copy(update={"method": "another method"})

    def wrong_xml(cert: Any, *, number: str, accredited: bool = True) -> bytes:
        if change == "data":
            return real_xml(other, number=number)
        if change == "number":
            return real_xml(cert, number="HC-2026-000777")
        return b"<?xml version='1.0'?><dcc:digitalCalibrationCertificate/>"

    monkeypatch.setattr(issuer.dcc, "xml", wrong_xml)
    data = issuer.issue(cal_cert).path.read_bytes()
    report = verifier.verify_pdf(data)
    assert report.verdict is Verdict.ALTERED
    assert any(r.startswith(reason) for r in report.reasons), report.reasons


def test_valid_certificate_reports_matching_dcc(issued: Any, verifier: Verifier) -> None:
    report = verifier.verify_pdf(issued.path.read_bytes())
    assert report.verdict is Verdict.VALID
    assert "embedded DCC: matches the ledger's data" in report.reasons


def test_embedding_can_be_switched_off(
    settings: Settings, ledger: Ledger, sealer: Any, renderer: Any, tmp_path: Path, cal_cert: Any
) -> None:
    from certissuer.issue import load_token_key

    off = replace(settings, dcc_embed=False)
    issuer = Issuer(
        off,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(off),
        out_dir=tmp_path / "o",
        renderer=renderer,
    )
    assert issuer.dcc is None
    issued = issuer.issue(cal_cert)
    data = issued.path.read_bytes()
    assert dcc.extract(data) is None and not pypdf.PdfReader(BytesIO(data)).attachments
    report = Verifier.from_settings(off, ledger=ledger).verify_pdf(data)
    assert report.verdict is Verdict.VALID and not any("DCC" in r for r in report.reasons)


def test_extract_bounds_the_decompressed_size(
    cal_cert: Any, lab: Settings, schema: dcc.Schema, renderer: Any
) -> None:
    pdf = renderer.render_pdf(
        cal_cert,
        number=NUMBER,
        issued=date(2026, 11, 27),
        qr_url="https://x.invalid/v/x",
        settings=lab,
    )
    bomb = b"<a>" + b" " * 5_000_000 + b"</a>"
    assert len(zlib.compress(bomb)) < 10_000
    data = dcc.embed(pdf, bomb)
    with pytest.raises(dcc.DccError, match="larger than 1000000 bytes"):
        dcc.extract(data, max_bytes=1_000_000)
    assert dcc.extract(data) == bomb


# --- settings ------------------------------------------------------------------------------


def test_schema_dir_and_embed_settings(tmp_path: Path) -> None:
    assert SCHEMA_DIR is not None
    profile = tmp_path / "lab.toml"
    profile.write_text(f'[dcc]\nschema_dir = "{SCHEMA_DIR}"\nembed = false\n', encoding="utf-8")
    settings = load_settings(profile, env={})
    assert settings.dcc_schema_dir == SCHEMA_DIR.resolve() and settings.dcc_embed is False
    assert dcc.DccWriter.from_settings(settings) is None
    on = load_settings(profile, env={"CERTISSUER_DCC_EMBED": "true"})
    writer = dcc.DccWriter.from_settings(on)
    assert writer is not None and writer.schema is dcc.Schema.load(SCHEMA_DIR)  # compiled once
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no DCC schemas there"):
        dcc.find_schema_dir(Settings(dcc_schema_dir=empty))
    with pytest.raises(ConfigError, match="no DCC schemas there"):
        dcc.find_schema_dir(Settings(), env={"CERTISSUER_DCC_SCHEMA_DIR": str(empty)})
    assert (
        dcc.find_schema_dir(Settings(), env={"CERTISSUER_DCC_SCHEMA_DIR": str(SCHEMA_DIR)})
        == SCHEMA_DIR
    )


def test_schema_is_compiled_once_per_real_folder(tmp_path: Path) -> None:
    """A link to the schema folder (as CI's checkout may have) is the same schema."""
    assert SCHEMA_DIR is not None
    link = tmp_path / "dcc-link"
    link.symlink_to(SCHEMA_DIR.resolve(), target_is_directory=True)
    assert dcc.Schema.load(link) is dcc.Schema.load(SCHEMA_DIR)


def test_embed_true_without_schemas_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dcc_write, "find_schema_dir", lambda settings=None, env=None: None)
    with pytest.raises(ConfigError, match="embed is true, but the DCC schemas were not found"):
        dcc.DccWriter.from_settings(Settings(dcc_embed=True))
    assert dcc.DccWriter.from_settings(Settings()) is None  # unset: no schemas, no DCC


# --- what the PDF says, the DCC says: indeterminate verdicts, the accreditation number --------


def _conformities(xml: bytes) -> list[str]:
    return re.findall(r"<dcc:conformity>([^<]*)</dcc:conformity>", xml.decode())


def _lab_code(xml: bytes) -> str:
    found = re.search(
        r"<dcc:calibrationLaboratoryCode>([^<]*)</dcc:calibrationLaboratoryCode>", xml.decode()
    )
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("error", "written"),
    [
        ("0.08", "pass"),  # |e| ≤ MPE − U
        ("0.09", "conditionalPass"),  # in the guard band, inside the MPE: indeterminate
        ("-0.12", "conditionalFail"),  # beyond the MPE, within MPE + U: indeterminate
        ("0.13", "fail"),
    ],
)
def test_an_indeterminate_check_is_written_as_neither_pass_nor_fail(
    ver_data: dict[str, Any], lab: Settings, schema: dcc.Schema, error: str, written: str
) -> None:
    data = json.loads(json.dumps(ver_data))
    for check in data["checks"]:
        check["uncertainty"] = "0.02"  # guarded acceptance, ILAC-G8 (w = U)
    data["checks"][2]["error"] = error
    cert = parse_certificate(data)
    xml = dcc.to_xml(cert, number="KĐ-2026-000001", settings=lab, schema=schema)  # validated
    # The certificate's verdict, then each check's (0.04 and -0.02 pass: ≤ 0.10 − 0.02).
    assert _conformities(xml) == [written, "pass", "pass", written]
    assert dcc.read_certificate(xml, schema=schema) == cert  # the round trip still holds


@pytest.mark.parametrize(
    ("spec", "written"),
    [
        ({"mpe": "0.0004"}, "pass"),
        ({"mpe": "0.0004", "decision_rule": "guarded"}, "conditionalPass"),  # 0.00031 in band
        ({"mpe": "0.0001"}, "fail"),
    ],
)
def test_a_calibration_conformity_in_the_guard_band_is_conditional(
    cal_data: dict[str, Any], lab: Settings, schema: dcc.Schema, spec: dict[str, str], written: str
) -> None:
    cert = parse_certificate({**cal_data, "conformity": {"decision_rule": "simple", **spec}})
    xml = dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema)
    assert _conformities(xml) == [written]
    assert dcc.read_certificate(xml, schema=schema) == cert


def test_the_accreditation_number_only_where_the_pdf_carries_the_mark(
    cal_cert: Any, ver_cert: Any, lab: Settings, schema: dcc.Schema
) -> None:
    assert lab.lab_accreditation == "VILAS 999"
    inside = dcc.to_xml(cal_cert, number=NUMBER, settings=lab, schema=schema)
    assert _lab_code(inside) == "VILAS 999"
    outside = dcc.to_xml(cal_cert, number=NUMBER, settings=lab, schema=schema, accredited=False)
    assert _lab_code(outside) == lab.lab_code
    # A verification certificate carries the designation decision, never the VILAS number.
    ver = dcc.to_xml(ver_cert, number="KĐ-2026-000001", settings=lab, schema=schema)
    assert _lab_code(ver) == lab.lab_code


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        (("Cân / Balance: 0..500 g",), "VILAS 1234"),  # every result inside: the mark
        (("Cân / Balance: 0..100 g",), "T01"),  # 200 g outside: no mark, no number
        ((), "T01"),  # no scope data: no mark, no number
    ],
)
def test_the_issued_dcc_follows_the_accreditation_mark(
    settings: Settings,
    ledger: Ledger,
    sealer: Any,
    renderer: Any,
    tmp_path: Path,
    cal_cert: Any,
    scope: tuple[str, ...],
    code: str,
) -> None:
    from certissuer.issue import load_token_key

    lab = settings.replace(lab_accreditation="VILAS 1234", lab_accredited_scope=scope)
    issuer = Issuer(
        lab, ledger=ledger, sealer=sealer, token_key=load_token_key(lab),
        out_dir=tmp_path / "o", renderer=renderer,
    )  # fmt: skip
    issued = issuer.issue(cal_cert)
    embedded = dcc.extract(issued.path.read_bytes())
    assert embedded is not None and _lab_code(embedded) == code
    # Rebuilt from the ledger with the same profile: the same bytes.
    assert dcc.export_entry(ledger.get(issued.number), lab) == embedded


# --- records stored before issue 16: k ≠ 2 and no coverage probability ------------------------


def _old_record(cal_data: dict[str, Any]) -> dict[str, Any]:
    """The sample calibration as stored before issue 16: its first result has k = 3 and no
    coverage probability (then nothing asked for one)."""
    data = json.loads(json.dumps(cal_data))
    data["results"][0]["coverage_factor"] = "3"
    data["results"][0].pop("coverage_probability", None)
    return data


def test_a_stored_record_parses_as_issued_but_new_input_is_refused(
    cal_data: dict[str, Any], renderer: Any, lab: Settings
) -> None:
    from pydantic import ValidationError

    from certissuer.model import canonical_json

    from ._forge import pdftotext

    old = _old_record(cal_data)
    with pytest.raises(ValidationError, match="expected the coverage probability for k = 3"):
        parse_certificate(old)  # as input: refused
    cert = parse_certificate(old, stored=True)
    assert cert.results[0].probability is None and cert.results[1].probability == Decimal("0.95")
    # Its canonical form (and so its digest) is the one stored: no probability was added.
    first = json.loads(canonical_json(cert))["results"][0]
    assert first["coverage_factor"] == "3" and "coverage_probability" not in first
    pdf = renderer.render_pdf(
        cert, number=NUMBER, issued=date(2026, 11, 27), qr_url="https://v.invalid/v/x",
        settings=lab,
    )  # fmt: skip
    text = " ".join(pdftotext(pdf).split())
    # Its statement names k = 3 and claims no probability; the k = 2 rows keep theirs.
    assert "nhân với hệ số phủ k = 3." in text and "coverage factor k = 3." in text
    assert "k = 3, tương ứng" not in text and "k = 3, corresponding" not in text
    assert "k = 2, tương ứng với xác suất phủ xấp xỉ 95 %" in text


def test_a_stored_record_exports_a_valid_dcc_that_input_refuses(
    cal_data: dict[str, Any], lab: Settings, schema: dcc.Schema, tmp_path: Path
) -> None:
    cert = parse_certificate(_old_record(cal_data), stored=True)
    xml = dcc.to_xml(cert, number=NUMBER, settings=lab, schema=schema)  # validated
    assert "certissuer_expandedUncertainty" in xml.decode()
    assert xml.decode().count("<si:coverageProbability>") == len(cert.results) - 1
    assert _xmlschema_errors([_write(tmp_path / "old.xml", xml)]) == []
    assert dcc.read_certificate(xml, schema=schema, stored=True) == cert
    with pytest.raises(InputErrors, match="expected the coverage probability for k = 3"):
        dcc.read_certificate(xml, schema=schema)  # as input: refused


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("dcc_written", ["now", "before issue 16"])
def test_a_stored_record_verifies_valid_and_exports(
    issuer: Issuer, verifier: Verifier, ledger: Ledger, settings: Settings,
    cal_data: dict[str, Any], monkeypatch: pytest.MonkeyPatch, dcc_written: str,
) -> None:  # fmt: skip
    cert = parse_certificate(_old_record(cal_data), stored=True)
    assert issuer.dcc is not None
    if dcc_written == "before issue 16":
        # Then the DCC carried p computed from k (normal distribution, 0.997 for k = 3).
        real_xml = issuer.dcc.xml

        def old_xml(c: Any, **kw: Any) -> bytes:
            results = [r.model_copy(update={"coverage_probability": Decimal("0.997")})
                       if r.coverage_factor == 3 else r for r in c.results]  # fmt: skip
            return real_xml(c.model_copy(update={"results": results}), **kw)

        monkeypatch.setattr(issuer.dcc, "xml", old_xml)
    issued = issuer.issue(cert)
    entry = ledger.get(issued.number)
    assert "coverage_probability" not in entry.data()["results"][0]  # stored the old way
    report = verifier.verify_pdf(issued.path.read_bytes())
    assert report.verdict is Verdict.VALID, report.reasons
    assert any(r.startswith("embedded DCC: matches the ledger's data") for r in report.reasons)
    exported = dcc.export_entry(entry, settings)  # rebuilt from the ledger: parses
    assert dcc.read_certificate(exported, stored=True) == cert
