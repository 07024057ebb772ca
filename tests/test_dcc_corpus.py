"""Public example DCCs (tests/data/dcc-corpus): each issues and verifies, or is refused with one
line a lab can act on; and import → issue → export → re-read keeps every value read (issue 21).
"""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
from lxml import etree
from typer.testing import CliRunner

from certissuer import dcc, intake
from certissuer.cli import app
from certissuer.dcc import xmlsig
from certissuer.errors import InputErrors
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.registry import Register

from .conftest import PASSPHRASE

CORPUS = Path(__file__).parent / "data" / "dcc-corpus"
SCHEMAS = Path(__file__).parent / "data" / "dcc-schemas"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "dcc"
EXAMPLES = sorted(CORPUS.glob("*.xml"))
FILL = ["--received", "1957-08-01", "--performed-by", "A. Tester", "--signatory", "Lê Hoàng Phúc"]

BROKEN = "XML signature: BROKEN — the document was changed after signing"
REFUSED = {
    # PTB's vacuum and silicon-sphere examples state results without an indicated value
    # (refType basic_measuredValue) and name no reference standard: not a calibration
    # certificate of the Vietnamese form (Mẫu 19.GCNHC).
    "ptb-xsd-dcc-vacuumlab-CDG.xml": (2, "no dcc:result gives indicated values"),
    "ptb-xsd-dcc-vacuumlab-SRG.xml": (2, "no dcc:result gives indicated values"),
    "ptb-xsd-siliziumkugel.xml": (2, "no dcc:result gives indicated values"),
    # Two weights, each stated by its conventional mass, density and volume: the same.
    "ptb-xsd-example-weights.xml": (
        2,
        "ptb-xsd-example-weights.xml, item 2: the DCC lacks what a Vietnamese certificate",
    ),
    # Published changed after signing: a DCC whose XML signature is broken is not issued.
    "dcc_gp_temperature_typical_v12_signed_manipulated.xml": (2, BROKEN),
    "dcc_gp_temperature_typical_v12_v3.2.0_signed_manipulated.xml": (2, BROKEN),
    # PTB's "not good practice" variant: the error's refType moved to an id, so nothing
    # says which quantity carries the uncertainty.
    "dcc_ngp_temperature_typical_v12_refType2ID.xml": (
        2,
        "results 'Measuring results': an expanded uncertainty (si:expandedUnc",
    ),
}
LAB_A = "CN=Calibration Lab A1,O=Calibration A GmbH"
SIGNERS = {  # the signer each signed example names (its certificate not checked for trust)
    "dcc_gp_temperature_typical_v12_signed.xml": LAB_A,
    "dcc_gp_temperature_typical_v12_v3.2.0_signed.xml": LAB_A,
    "dcc_gp_temperature_typical_v12_v3.2.0_signed_lt.xml": LAB_A,
    # Revoked, says the file's name: revocation is not checked, and the line says so.
    "dcc_gp_temperature_typical_v12_v3.2.0_signed_lt_revoked.xml": (
        "CN=Calibration Lab B1,O=Calibration B GmbH"
    ),
}
STANDARDS = [
    ("PT100-1", "Pt 100 thermometer", "GP-mE-Certificate-x"),
    ("DP-1", "Dew point hygrometer", "GP-mE-Certificate-y"),
    ("PT25-1", "DAkkS-Reference (PT25)", "GP-PT25-Certificate"),
]


def _profile(tmp_path: Path, pki: KeyPaths) -> Path:
    profile = tmp_path / "lab.toml"
    profile.write_text(
        f'[lab]\ncode = "X1"\nplace = "Đồng Tháp"\n[signing]\npkcs12 = "{pki.signer_p12}"\n'
        f'trust_roots = ["{pki.ca_cert}"]\n[token]\nkey = "{pki.token_key}"\n'
        f'[ledger]\nurl = "sqlite:///{tmp_path / "l.db"}"\n',
        encoding="utf-8",
    )
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", create=True)
    register = Register(ledger.engine, lab_code="X1")
    for code, name, number in STANDARDS:
        register.add(
            "standard",
            {
                "code": code,
                "name": name,
                "certificate_number": number,
                "calibration_due": "2099-12-31",
            },
        )
    return profile


def test_the_corpus_is_there_with_its_licences() -> None:
    assert len(EXAMPLES) >= 10
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES:
        assert path.name in readme, f"{path.name} has no source/licence line in README.md"
        assert re.search(rb"GNU\s+Lesser\s+General\s+Public\s+License", path.read_bytes())
    assert (CORPUS / "COPYING.LESSER").is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_issues_and_verifies_or_is_refused_in_one_line(
    path: Path, tmp_path: Path, pki: KeyPaths
) -> None:
    profile = _profile(tmp_path, pki)
    runner = CliRunner()
    out = tmp_path / "out"
    args = ["--config", str(profile), "issue", "--json", "-o", str(out), *FILL, str(path)]
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    result = runner.invoke(app, args, env=env)
    if path.name in REFUSED:
        code, reason = REFUSED[path.name]
        assert result.exit_code == code, result.stdout
        lines = [x for x in result.stderr.splitlines() if reason in x]
        assert len(lines) == 1, result.stderr
        assert not out.exists() or not list(out.glob("*.pdf"))
        return
    assert result.exit_code == 0, result.stderr + result.stdout
    # One line on the XML signature: PTB's 3.2.0 example is signed (XAdES), the others are not.
    said = [x for x in result.stderr.splitlines() if "XML signature" in x]
    if path.name in SIGNERS:
        assert said == [
            f"note: {path}: XML signature: intact, signed by {SIGNERS[path.name]},C=DE "
            "(certificate not checked against a trust list)"
        ], result.stderr
    else:
        assert said == [f"note: {path}: no XML signature"], result.stderr
    issued = json.loads(result.stdout)["issued"]
    items = len(etree.parse(str(path)).getroot().findall(".//{https://ptb.de/dcc}item"))
    assert len(issued) == items
    for done in issued:
        verified = runner.invoke(
            app, ["--config", str(profile), "verify", done["entry"]["pdf_path"]]
        )
        assert verified.exit_code == 0, verified.stdout + verified.stderr
        assert "embedded DCC: matches the ledger's data" in verified.stdout
    if path.name == "dcc_gp_temperatur_resistance_v12.xml":  # the ohm prints (in Vera)
        pdf = pypdf.PdfReader(issued[0]["entry"]["pdf_path"])
        assert "Ω" in pdf.pages[0].extract_text()
    if path.name == "dcc_gp_humidity_v1.0.xml":  # the range and the extra columns are printed
        text = " ".join(
            pypdf.PdfReader(issued[0]["entry"]["pdf_path"]).pages[0].extract_text().split()
        )
        assert "Further data of the source DCC" in text
        assert "performed 1957-08-13 … 1957-08-14" in text
        # The gas temperature of each point is a column of the results table, not a note.
        layout = _layout(Path(issued[0]["entry"]["pdf_path"]))
        at = next(i for i, line in enumerate(layout) if "Reference value" in line)
        heading = layout[at : at + 6]  # the header cells wrap over a few lines, side by side
        assert "gas temperature" in "".join(heading) and "(°C)" in "".join(heading), heading
        assert any("Giá trị danh" in line for line in heading), heading
        rows = [line for line in layout if re.search(r"^\s*20\.1\s+19\.70\s", line)]
        assert len(rows) == 1 and rows[0].split()[-2:] == ["%", "20.0"], rows
        assert "Reference value gas temperature / value" not in text


def _layout(pdf: Path) -> list[str]:
    """The lines of the PDF as pdftotext -layout sets them (columns kept side by side)."""
    done = subprocess.run(
        ["pdftotext", "-layout", "-q", str(pdf), "-"],
        capture_output=True,
        check=True,
        timeout=60,
        text=True,
    )
    return done.stdout.splitlines()


def _read(path: Path, **fill: Any) -> list[dcc.Imported]:
    root = dcc.parse_root(path.read_bytes(), where=path.name)
    return dcc.read_foreign(root, where=path.name, fill=dcc.Fill(**fill))


def test_humidity_lists_hybrids_items_range_and_extras() -> None:
    [one, two] = _read(CORPUS / "dcc_gp_humidity_v1.0.xml", received="1957-08-01")
    assert one.data["calibrated"] == "1957-08-14"
    assert "performed 1957-08-13 … 1957-08-14 (calibration date: 1957-08-14)" in one.notes
    assert "Ambient condition temperature: 22 … 24 °C" in one.notes
    assert one.data["conditions"] == {
        "temperature": "23",
        "temperature_uncertainty": "1",
        "humidity": "45",
        "humidity_uncertainty": "10",
    }
    rows = one.data["results"]
    assert len(rows) == 7  # one per element of the si:realListXMLList
    # The percent representation of the hybrid; U stated on the \one one, carried over ×100.
    assert rows[0] | {"quantity": ""} == {
        "quantity": "",
        "unit": "%",
        "nominal": "20.1",
        "measured": "19.7",
        "error": "-0.4",
        "uncertainty": "0.6",
        "coverage_factor": "2",
        "coverage_probability": "0.95",
        "extra": {"Reference value gas temperature (°C)": "20.0"},
    }
    # The gas temperature, one per point (an influence condition of the list), is a column;
    # the conditions of the whole calibration stay lines.
    assert one.data["extra_columns"] == [{"name": "Reference value gas temperature (°C)"}]
    assert all(r["extra"] == rows[0]["extra"] for r in rows)
    assert not any("gas temperature" in e for e in one.extras)
    assert any("Flow velocity" in e for e in one.extras)
    assert two.item == 2 and one.data["item"] != two.data["item"]
    [only] = _read(CORPUS / "dcc_gp_humidity_v1.0.xml", item=2)
    assert only.data["item"] == two.data["item"]
    assert "date received (--received YYYY-MM-DD)" in only.missing


def test_temperature_prints_celsius_with_the_error_and_u_given_in_kelvin() -> None:
    # The GP temperature example gives indicated and reference values in K and °C, but the
    # error and its uncertainty in K only: a difference, the same in °C.
    [read] = _read(CORPUS / "dcc_gp_temperature_typical_v12.xml")
    first = read.data["results"][0]
    assert (first["unit"], first["measured"], first["nominal"]) == ("°C", "33.17", "33.098")
    assert (first["error"], first["uncertainty"]) == ("0.072", "0.061")
    assert read.data["method"].endswith("(DKD-R 5-1:2018)")


def test_options_override_what_the_dcc_says() -> None:
    path = CORPUS / "dcc_gp_humidity_v1.0.xml"
    [from_dcc] = _read(path, item=1)
    assert from_dcc.data["place_of_calibration"].endswith("Musterstadt, DE, www.kalibrierfirma.xx")
    [given] = _read(path, item=1, place="Phòng đo ẩm", performed_by="A", signatory="B")
    assert given.data["place_of_calibration"] == "Phòng đo ẩm"
    assert (given.data["performed_by"], given.data["signatory"]) == ({"name": "A"}, {"name": "B"})
    assert given.data["signatory"] != from_dcc.data["signatory"]


def test_missing_fields_come_in_one_list(tmp_path: Path) -> None:
    source = CORPUS / "dcc_gp_temperature_typical_v12.xml"
    with pytest.raises(InputErrors) as caught:
        intake.read_certificates(source)
    [error] = caught.value.errors
    message = str(error)
    assert "\n" not in message and message.count("lacks") == 1
    for needed in ("--received", "certificate number of standard 'Pt 100 thermometer'"):
        assert needed in message


@pytest.mark.parametrize(
    ("name", "fill", "hint"),
    [
        # Only what a DCC alone can carry is missing: neither options nor the register help.
        (
            "ptb-xsd-siliziumkugel.xml",
            {"received": "2018-10-12"},
            "no option or register fills this: ask the DCC's issuer for a DCC with it",
        ),
        # An option, the register and the DCC each fill a part: each is named, once.
        (
            "dcc_ngp_temperature_typical_v12_refType2ID.xml",
            {},
            "give --received; add each standard named with 'certissuer registry add standard "
            "code=… name=… certificate_number=… calibration_due=YYYY-MM-DD'; for the rest, "
            "ask the DCC's issuer for a DCC that carries it",
        ),
    ],
)
def test_a_refusal_names_only_what_fills_the_missing_fields(
    name: str, fill: dict[str, Any], hint: str
) -> None:
    [imported, *_] = _read(CORPUS / name, **fill)
    error = dcc.missing_error(name, imported.missing, imported.item)
    assert error.hint == hint


def test_a_refusal_for_options_only_names_no_register_or_issuer() -> None:
    error = dcc.missing_error(
        "x.xml", ["date received (--received YYYY-MM-DD)", "signatory (--signatory NAME)"], 1
    )
    assert error.hint == "give --received, --signatory"
    # A DCC has items, not rows: the item is the place, and no "row" is named.
    assert str(error).startswith("x.xml, item 1: the DCC lacks what a Vietnamese certificate")


def test_a_3_3_document_with_d_si_2_2_uncertainties_is_read(tmp_path: Path) -> None:
    # DCC 3.3 uses D-SI 2.2, which names the expanded uncertainty expandedMU: the GP example
    # rewritten so gives the same rows as the 3.1.2 original.
    text = (CORPUS / "dcc_gp_humidity_v1.0.xml").read_text(encoding="utf-8")
    newer = (
        text.replace('schemaVersion="3.1.2"', 'schemaVersion="3.3.0"')
        .replace("expandedUncXMLList", "expandedMUXMLList")
        .replace("uncertaintyXMLList", "valueExpandedMUXMLList")
    )
    assert newer.count("valueExpandedMUXMLList") >= 2
    path = tmp_path / "humidity-3.3.xml"
    path.write_text(newer, encoding="utf-8")
    [old] = _read(CORPUS / "dcc_gp_humidity_v1.0.xml", item=1)
    [new] = _read(path, item=1)
    assert new.data["results"] == old.data["results"]
    assert new.data["results"][3]["uncertainty"] == "1.1"


def test_a_foreign_dcc_with_entities_is_refused_unread(tmp_path: Path) -> None:
    # The foreign path parses as the own one does: an entity bomb in another lab's DCC is
    # refused at its DOCTYPE, never expanded into the certificate's fields.
    text = (CORPUS / "ptb-xsd-dcc-vacuumlab-SRG.xml").read_text(encoding="utf-8")
    bomb = '<!DOCTYPE d [<!ENTITY a "AAAAAAAAAA"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    root_at = text.index("<dcc:digitalCalibrationCertificate")
    evil = (
        text[:root_at]
        + bomb
        + text[root_at:].replace("<dcc:uniqueIdentifier>", "<dcc:uniqueIdentifier>&b;", 1)
    )
    path = tmp_path / "evil.xml"
    path.write_text(evil, encoding="utf-8")
    with pytest.raises(InputErrors) as caught:
        intake.read_certificates(path, fill=dcc.Fill(received="2020-06-01"))
    [error] = caught.value.errors
    assert "DOCTYPE declaration: DTDs and entities are not allowed" in str(error)


def test_an_unreadable_version_is_one_clear_line(tmp_path: Path) -> None:
    old = tmp_path / "old.xml"
    text = (CORPUS / "ptb-xsd-siliziumkugel.xml").read_text(encoding="utf-8")
    old.write_text(text.replace('schemaVersion="3.0.0"', 'schemaVersion="2.4.0"'), "utf-8")
    with pytest.raises(InputErrors) as caught:
        intake.read_certificates(old)
    [error] = caught.value.errors
    assert "a DCC of schema version 2.4.0: certissuer reads DCC 3.0, 3.1, 3.2, 3.3" in str(error)


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if p.name not in REFUSED], ids=lambda p: p.name
)
def test_round_trip_keeps_every_value_read(path: Path, tmp_path: Path, pki: KeyPaths) -> None:
    profile = _profile(tmp_path, pki)
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    args = ["--config", str(profile), "issue", "--json", "--item", "1", *FILL]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), str(path)], env=env)
    assert result.exit_code == 0, result.stderr
    [done] = json.loads(result.stdout)["issued"]
    exported = runner.invoke(
        app, ["--config", str(profile), "dcc", "export", done["entry"]["number"]]
    )
    assert exported.exit_code == 0, exported.stderr
    again = dcc.read_certificate(exported.stdout_bytes, stored=True)
    [read] = _read(
        path,
        item=1,
        received="1957-08-01",
        performed_by="A. Tester",
        signatory="Lê Hoàng Phúc",
        lab_place="Đồng Tháp",
    )
    for key, value in read.data.items():
        if key in ("kind", "standards"):
            continue
        _same(getattr(again, key), value, key)


def _same(got: Any, read: Any, where: str) -> None:
    """`got` (the model's value after the round trip) holds the value `read` from the DCC."""
    if isinstance(got, dict):  # a mapping of the model (a row's extra quantities)
        assert got == read, (where, got, read)
    elif isinstance(read, dict):
        for name, value in read.items():
            if name == "coverage_probability":
                assert got.probability == Decimal(value), where
            else:
                _same(getattr(got, name), value, f"{where}.{name}")
    elif isinstance(read, list):
        assert len(got) == len(read), where
        for i, (g, r) in enumerate(zip(got, read, strict=True)):
            _same(g, r, f"{where}[{i}]")
    elif isinstance(got, Decimal):
        assert got == Decimal(read) and str(got) == str(Decimal(read)), (where, got, read)
    else:
        assert str(got) == str(read), (where, got, read)


@pytest.mark.skipif(not (SHARED / "SI_Format-2.1.0.xsd").is_file(), reason="no shared schemas")
@pytest.mark.parametrize(
    ("version", "xsd"),
    [("3.1.1", SCHEMAS / "3.1.1" / "dcc.xsd"), ("3.1.2", SHARED / "dcc-3.1.2.xsd")],
)
def test_examples_valid_against_their_official_schema(version: str, xsd: Path) -> None:
    # The corpus is what it claims to be: each example of these versions is valid against the
    # official, unmodified schema (D-SI 2.1.0 from shared/, never fetched).
    parser = etree.XMLParser(no_network=True, load_dtd=False)

    class Local(etree.Resolver):  # type: ignore[misc]
        def resolve(self, url: str, pubid: Any, context: Any) -> Any:
            if url.endswith("/si/v2.1.0/SI_Format.xsd"):
                return self.resolve_filename(str(SHARED / "SI_Format-2.1.0.xsd"), context)
            return None

    parser.resolvers.add(Local())
    schema = etree.XMLSchema(etree.parse(str(xsd), parser))
    checked = []
    for path in EXAMPLES:
        tree = etree.parse(str(path))
        if tree.getroot().get("schemaVersion") != version:
            continue
        # DCC 3.1 has no place for a ds:Signature (3.2 added one); PTB published signed 3.1.1
        # examples all the same: what they sign is checked.
        xmlsig.strip(tree.getroot())
        assert schema.validate(tree), (path.name, str(schema.error_log)[:300])
        checked.append(path.name)
    assert len(checked) == {"3.1.1": 8, "3.1.2": 1}[version], checked


def _three_extras(tmp_path: Path) -> Path:
    """The humidity example with two more quantities per point in its list: three in all."""
    text = (CORPUS / "dcc_gp_humidity_v1.0.xml").read_text(encoding="utf-8")
    start = text.index('<dcc:influenceCondition refType="gp_gasTemperature">')
    end = text.index("</dcc:influenceCondition>", start) + len("</dcc:influenceCondition>")
    condition = text[start:end]
    flow = (
        condition.replace("Reference value gas temperature", "Gas flow")
        .replace("Referenzwert Gastemperatur", "Gasfluss")
        .replace(
            r"<si:unitXMLList>\kelvin</si:unitXMLList>", r"<si:unitXMLList>\one</si:unitXMLList>"
        )
        .replace(r"\degreecelsius", r"\litre\per\minute")
        .replace("20.0 20.0 20.0 20.0 20.0 20.0 20.0", "1.0 1.1 1.2 1.3 1.4 1.5 1.6")
    )
    pressure = (
        condition.replace("Reference value gas temperature", "Gas pressure")
        .replace(
            '<dcc:content lang="de">Referenzwert Gastemperatur</dcc:content>',
            '<dcc:content lang="vi">Áp suất khí</dcc:content>',
        )
        .replace(
            r"<si:unitXMLList>\kelvin</si:unitXMLList>", r"<si:unitXMLList>\one</si:unitXMLList>"
        )
        .replace(r"\degreecelsius", r"\kilo\pascal")
        .replace("20.0 20.0 20.0 20.0 20.0 20.0 20.0", "101.1 101.2 101.3 101.4 101.5 101.6 101.7")
    )
    path = tmp_path / "humidity-3-extras.xml"
    path.write_text(text[:end] + flow + pressure + text[end:], encoding="utf-8")
    return path


def test_more_than_two_extras_go_to_a_table_by_row_number(tmp_path: Path, pki: KeyPaths) -> None:
    path = _three_extras(tmp_path)
    [read] = _read(path, item=1)
    assert [c["name"] for c in read.data["extra_columns"]] == [
        "Reference value gas temperature (°C)",
        "Gas flow (L/min)",
        "Gas pressure (kPa)",
    ]
    # A Vietnamese name in the DCC heads the column in Vietnamese, the English one beneath.
    assert read.data["extra_columns"][2] == {
        "name": "Gas pressure (kPa)",
        "vi": "Áp suất khí (kPa)",
        "en": "Gas pressure (kPa)",
    }
    profile = _profile(tmp_path, pki)
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    args = ["--config", str(profile), "issue", "--json", "--item", "1", *FILL]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out"), str(path)], env=env)
    assert result.exit_code == 0, result.stderr + result.stdout
    [done] = json.loads(result.stdout)["issued"]
    layout = _layout(Path(done["entry"]["pdf_path"]))
    at = next(i for i, line in enumerate(layout) if "Đại lượng khác" in line)
    assert "Further quantities" in "\n".join(layout[at : at + 2])
    below = layout[at:]
    assert any("Áp suất khí" in line for line in below)
    # Row 4 of the results: its number, then its gas temperature, flow and pressure.
    [row] = [line for line in below if re.match(r"^\s*4\s", line)]
    assert row.split() == ["4", "20.0", "1.3", "101.4"], row
    # The results table carries the row numbers too, and none of the extras.
    [result_row] = [line for line in layout[:at] if re.search(r"^\s*4\s+\S+\s+\S+", line)]
    assert "101.4" not in result_row
    exported = runner.invoke(
        app, ["--config", str(profile), "dcc", "export", done["entry"]["number"]]
    )
    assert exported.exit_code == 0, exported.stderr
    again = dcc.read_certificate(exported.stdout_bytes, stored=True)
    assert again.extra_columns[2].vi == "Áp suất khí (kPa)"
    assert again.results[3].extra == {
        "Reference value gas temperature (°C)": "20.0",
        "Gas flow (L/min)": "1.3",
        "Gas pressure (kPa)": "101.4",
    }


def test_extras_leave_earlier_records_and_their_digest_as_they_were() -> None:
    from certissuer.model import canonical_json, parse_certificate

    sample = json.loads(
        (Path(__file__).parents[1] / "samples" / "calibration.json").read_text(encoding="utf-8"),
        parse_float=Decimal,
    )
    record = sample[0] if isinstance(sample, list) else sample
    cert = parse_certificate(record)
    assert b'"extra' not in canonical_json(cert)
    twice = {**record, "extra_columns": [{"name": "T (°C)"}, {"name": "T (°C)"}]}
    with pytest.raises(ValueError, match="expected each extra column once, got twice: T"):
        parse_certificate(twice)


def _one_point(tmp_path: Path) -> Path:
    """The humidity example cut to its first point: every list of values keeps its first."""
    text = (CORPUS / "dcc_gp_humidity_v1.0.xml").read_text(encoding="utf-8")
    cut = re.sub(
        r"<si:(valueXMLList|expandedUncXMLList|coverageFactorXMLList"
        r"|coverageProbabilityXMLList|uncertaintyXMLList)>\s*(\S+)[^<]*</si:\1>",
        r"<si:\1>\2</si:\1>",
        text,
    )
    path = tmp_path / "humidity-one-point.xml"
    path.write_text(cut, encoding="utf-8")
    return path


def test_a_quantity_of_a_single_row_result_is_a_column_not_a_note(tmp_path: Path) -> None:
    [one, _] = _read(_one_point(tmp_path), received="1957-08-01")
    [row] = one.data["results"]
    assert row["extra"] == {"Reference value gas temperature (°C)": "20.0"}
    assert one.data["extra_columns"] == [{"name": "Reference value gas temperature (°C)"}]
    assert not any("gas temperature" in e for e in one.extras), one.extras


def test_extra_values_print_rounded_and_are_stored_as_given(tmp_path: Path, pki: KeyPaths) -> None:
    # A value with its uncertainty prints as a result does (U to two significant digits, the
    # value to U's place); one without prints as given, less a binary float's noise. The
    # record, the ledger and the exported DCC keep the text as it came.
    sample = json.loads(
        (Path(__file__).parents[1] / "samples" / "calibration.json").read_text(encoding="utf-8")
    )
    record = sample[0] if isinstance(sample, list) else sample
    given = ["20.0312 ± 0.0512", "0.30000000000000004", "-1.5E+1"]
    names = ["Gas temperature (°C)", "Flow (L/min)"]
    for i, row in enumerate(record["results"]):
        row["extra"] = {names[0]: given[i % 3], names[1]: given[(i + 1) % 3]}
    record["extra_columns"] = [{"name": n} for n in names]
    path = tmp_path / "extras.json"
    path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    profile = _profile(tmp_path, pki)
    runner = CliRunner()
    env = {"CERTISSUER_P12_PASSPHRASE": PASSPHRASE.decode()}
    args = ["--config", str(profile), "issue", "--json", "-o", str(tmp_path / "out"), str(path)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.stderr + result.stdout
    [done] = json.loads(result.stdout)["issued"]
    layout = _layout(Path(done["entry"]["pdf_path"]))
    words = [w for line in layout for w in line.split()]
    # The narrow column wraps "20.031 ± 0.052" before the ±, never after it.
    assert words.count("20.031") == words.count("0.052") == 3, words
    assert all(words[i - 1] == "±" for i, w in enumerate(words) if w == "0.052")
    assert words.count("0.3") >= 3 and words.count("−15") == 2, words
    for raw in ("20.0312", "0.0512", "0.30000000000000004", "-1.5E+1"):
        assert raw not in words, raw
    exported = runner.invoke(
        app, ["--config", str(profile), "dcc", "export", done["entry"]["number"]]
    )
    assert exported.exit_code == 0, exported.stderr
    again = dcc.read_certificate(exported.stdout_bytes, stored=True)
    assert [r.extra for r in again.results] == [r["extra"] for r in record["results"]]
