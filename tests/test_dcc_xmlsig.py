"""XML signatures of DCC documents (XMLDSig / XAdES): intact, BROKEN, not checked, none.

PTB's signed Good Practice example (tests/data/dcc-corpus) is checked as published; the other
cases change it, or sign an unsigned example here with a fresh RSA key, the way an XMLDSig
signer does (enveloped signature over the whole document, exclusive C14N).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from typer.testing import CliRunner

from certissuer import dcc, intake
from certissuer.cli import app
from certissuer.dcc import xmlsig
from certissuer.errors import InputErrors

CORPUS = Path(__file__).parent / "data" / "dcc-corpus"
SIGNED = CORPUS / "dcc_gp_temperature_typical_v12_v3.2.0_signed.xml"
UNSIGNED = CORPUS / "dcc_gp_temperature_typical_v12.xml"
DS = "http://www.w3.org/2000/09/xmldsig#"


def _register(name: str, serial: str) -> tuple[str, str]:
    return ("GP-mE-Certificate-x", "2099-12-31")


FILL: dict[str, Any] = {
    "received": "1957-08-01",
    "performed_by": "A. Tester",
    "signatory": "Lê Hoàng Phúc",
    "standards": _register,
}


def _check(raw: bytes) -> list[xmlsig.SignatureCheck]:
    return xmlsig.check_signatures(raw, where="x.xml")


def _changed(old: bytes, new: bytes, raw: bytes | None = None) -> bytes:
    raw = SIGNED.read_bytes() if raw is None else raw
    assert raw.count(old) == 1, old
    return raw.replace(old, new)


def test_the_published_xades_signature_is_intact() -> None:
    [check] = _check(SIGNED.read_bytes())
    assert check.state == "intact", check.line
    assert check.signer == "CN=Calibration Lab A1,O=Calibration A GmbH,C=DE"
    assert check.line == (
        "XML signature: intact, signed by CN=Calibration Lab A1,O=Calibration A GmbH,C=DE "
        "(certificate not checked against a trust list)"
    )
    assert check.sourceline == 474


def test_a_changed_value_breaks_it() -> None:
    raw = _changed(b"306.248 373.121", b"306.249 373.121")
    [check] = _check(raw)
    assert check.state == "broken"
    assert check.line.startswith("XML signature: BROKEN — the document was changed after signing")
    assert "digest of the signed document differs" in check.line


def test_a_changed_signed_property_breaks_it() -> None:
    raw = _changed(
        b"<xades:SigningTime>2023-03-27T15:14:30Z", b"<xades:SigningTime>2023-03-28T15:14:30Z"
    )
    [check] = _check(raw)
    assert check.state == "broken"
    assert "the signed element #xades-id-" in check.line


def test_a_changed_signature_value_breaks_it() -> None:
    raw = _changed(b">OuLX9cHYrAJi10yLX131D7RDO9", b">OuLX9cHYrAJi10yLX131D7RDO8")
    [check] = _check(raw)
    assert check.state == "broken"
    assert "the signature value does not match the signed information" in check.line


def test_a_reference_dropped_from_signed_info_breaks_it() -> None:
    # Without the document's reference, the rest would still check: the signature value
    # over SignedInfo is what catches it.
    raw = SIGNED.read_bytes()
    start = raw.index(b'<ds:Reference Id="r-dcc_gp')
    end = raw.index(b"</ds:Reference>", start) + len(b"</ds:Reference>")
    [check] = _check(raw[:start] + raw[end:])
    assert check.state == "broken"


def test_no_signature_is_said_so(tmp_path: Path) -> None:
    root = etree.parse(str(SIGNED)).getroot()
    assert xmlsig.strip(root) == 1
    raw = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    assert _check(raw) == []
    path = tmp_path / "plain.xml"
    path.write_bytes(raw)
    result = CliRunner().invoke(app, ["dcc", "check", str(path)])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"{path}: no XML signature"


@pytest.mark.parametrize(
    ("old", "new", "algorithm"),
    [
        (b"xmldsig-more#ecdsa-sha256", b"xmldsig-more#ecdsa-sha1", "xmldsig-more#ecdsa-sha1"),
        (  # the document's reference (the file has CRLF line ends)
            b'"http://www.w3.org/2001/04/xmlenc#sha256"/>\r\n            <ds:DigestValue>dDIR',
            b'"http://www.w3.org/2000/09/xmldsig#sha1"/>\r\n            <ds:DigestValue>dDIR',
            "xmldsig#sha1",
        ),
        (
            b'Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>',
            b'Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>',
            "REC-xpath-19991116",
        ),
    ],
    ids=["signature-sha1", "digest-sha1", "xpath-transform"],
)
def test_an_algorithm_not_checked_is_said_so(old: bytes, new: bytes, algorithm: str) -> None:
    [check] = _check(_changed(old, new))
    assert check.state == "unchecked"
    assert check.line.startswith("XML signature: not checked: algorithm http")
    assert algorithm in check.line
    assert "intact" not in check.line and "BROKEN" not in check.line


def test_dcc_check_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["dcc", "check", str(SIGNED)])
    assert good.exit_code == 0, good.output
    assert "XML signature: intact, signed by CN=Calibration Lab A1" in good.stdout
    bad = tmp_path / "bad.xml"
    bad.write_bytes(_changed(b"306.248 373.121", b"306.249 373.121"))
    broken = runner.invoke(app, ["dcc", "check", str(bad)])
    assert broken.exit_code == 1
    assert f"{bad}, line 474: XML signature: BROKEN" in broken.stdout
    odd = tmp_path / "odd.xml"
    odd.write_bytes(_changed(b"xmldsig-more#ecdsa-sha256", b"xmldsig-more#ecdsa-sha1"))
    assert runner.invoke(app, ["dcc", "check", str(odd)]).exit_code == 8


def test_intake_refuses_a_changed_dcc_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "changed.xml"
    path.write_bytes(_changed(b"306.248 373.121", b"306.249 373.121"))
    heard: list[str] = []
    with pytest.raises(InputErrors) as caught:
        intake.read_certificates(path, fill=dcc.Fill(**FILL, report=heard.append))
    [error] = caught.value.errors
    assert str(error).startswith(f"{path}, line 474: XML signature: BROKEN — the document was")
    assert error.hint is not None and "as they signed it" in error.hint
    # The same file unchanged is read: the refusal is the signature's, not the content's.
    records = intake.read_certificates(SIGNED, fill=dcc.Fill(**FILL, report=heard.append))
    assert len(records) == 1
    assert any("XML signature: intact, signed by CN=Calibration Lab A1" in h for h in heard)


def test_intake_reads_a_dcc_whose_signature_it_cannot_check_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "sha1.xml"
    path.write_bytes(_changed(b"xmldsig-more#ecdsa-sha256", b"xmldsig-more#ecdsa-sha1"))
    heard: list[str] = []
    records = intake.read_certificates(path, fill=dcc.Fill(**FILL, report=heard.append))
    assert len(records) == 1
    assert [h for h in heard if "XML signature" in h] == [
        f"{path}: XML signature: not checked: algorithm "
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1 (signature)"
    ]


def _self_signed() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Phòng thí nghiệm B"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _sign_rsa(raw: bytes) -> bytes:
    """`raw` with an enveloped rsa-sha256 signature over the whole document (exc-c14n)."""
    key, cert = _self_signed()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(raw, parser)
    exc = "http://www.w3.org/2001/10/xml-exc-c14n#"
    unsigned = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    digest = base64.b64encode(hashlib.sha256(unsigned).digest()).decode()
    E = "{" + DS + "}"
    sig = etree.SubElement(root, E + "Signature", nsmap={"ds": DS})
    info = etree.SubElement(sig, E + "SignedInfo")
    etree.SubElement(info, E + "CanonicalizationMethod", Algorithm=exc)
    etree.SubElement(
        info, E + "SignatureMethod", Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    ref = etree.SubElement(info, E + "Reference", URI="")
    transforms = etree.SubElement(ref, E + "Transforms")
    etree.SubElement(transforms, E + "Transform", Algorithm=DS + "enveloped-signature")
    etree.SubElement(transforms, E + "Transform", Algorithm=exc)
    etree.SubElement(ref, E + "DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
    etree.SubElement(ref, E + "DigestValue").text = digest
    signed = etree.tostring(info, method="c14n", exclusive=True)
    value = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    etree.SubElement(sig, E + "SignatureValue").text = base64.b64encode(value).decode()
    x509data = etree.SubElement(etree.SubElement(sig, E + "KeyInfo"), E + "X509Data")
    der = cert.public_bytes(serialization.Encoding.DER)
    etree.SubElement(x509data, E + "X509Certificate").text = base64.b64encode(der).decode()
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def test_an_rsa_signature_over_exclusive_c14n_is_checked() -> None:
    raw = _sign_rsa(UNSIGNED.read_bytes())
    [check] = _check(raw)
    assert check.state == "intact", check.line
    assert check.signer == "C=VN,CN=Phòng thí nghiệm B"
    # Whitespace between elements is content too: one more space breaks it.
    [changed] = _check(raw.replace(b"<dcc:administrativeData>", b"<dcc:administrativeData> ", 1))
    assert changed.state == "broken"


def test_content_added_inside_a_signature_is_taken_out_before_reading() -> None:
    # An enveloped signature does not sign itself: DCC elements added in a ds:Object leave
    # it intact, so intake reads the tree without the signatures (xmlsig.strip).
    raw = SIGNED.read_bytes().replace(
        b"</ds:Object>",
        b'</ds:Object><ds:Object><dcc:remark xmlns:dcc="https://ptb.de/dcc">'
        b"<dcc:content>HIDDEN</dcc:content></dcc:remark></ds:Object>",
    )
    [check] = _check(raw)
    assert check.state == "intact"  # the Object is outside what was signed
    root = dcc.parse_root(raw, where="x.xml")
    assert b"HIDDEN" in etree.tostring(root)
    xmlsig.strip(root)
    assert b"HIDDEN" not in etree.tostring(root)


def test_strip_keeps_the_text_after_a_signature() -> None:
    root = etree.fromstring(f'<r><a/>one<ds:Signature xmlns:ds="{DS}"/>two<b/></r>'.encode())
    xmlsig.strip(root)
    assert etree.tostring(root) == b"<r><a/>onetwo<b/></r>"
