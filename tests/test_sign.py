from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pyhanko.sign.attributes
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from reportlab.pdfgen import canvas

from certissuer.config import Digest, Settings
from certissuer.errors import ConfigError, SigningError
from certissuer.keys import KeyPaths, make_keys
from certissuer.sign import (
    Level,
    Sealer,
    SigningPolicy,
    check_signing_certificate,
    policy_from_settings,
)

from .conftest import PASSPHRASE


def _pdf() -> bytes:
    buf = BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(100, 700, "certificate")
    c.save()
    return buf.getvalue()


def test_signature_validates_with_pyhanko_and_covers_info(pki: KeyPaths, sealer: Sealer) -> None:
    signed = sealer.sign(_pdf(), info={"CertissuerQR": "https://v.test/v/abc"})
    reader = PdfFileReader(BytesIO(signed))
    (sig,) = reader.embedded_signatures
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(pki.ca_cert))])
    status = validate_pdf_signature(sig, ctx)
    assert status.intact and status.valid and status.trusted
    assert status.md_algorithm == "sha256"
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    assert reader.trailer_view["/Info"]["/CertissuerQR"] == "https://v.test/v/abc"


def test_signing_certificate_attribute_is_encoded_once_and_names_the_signer(
    pki: KeyPaths, sealer: Sealer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ESS signing-certificate-v2 attribute (RFC 5035) comes from the signer's bytes made
    once, not rebuilt per signature: with pyHanko's builder broken, signing still works."""

    def rebuilt(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("signing-certificate-v2 rebuilt for a signature")

    monkeypatch.setattr(pyhanko.sign.attributes, "as_signing_certificate_v2", rebuilt)
    first, second = sealer.sign(_pdf()), sealer.sign(_pdf())
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(pki.ca_cert))])
    cert_der = sealer.certificate.public_bytes(serialization.Encoding.DER)
    for signed in (first, second):
        (sig,) = PdfFileReader(BytesIO(signed)).embedded_signatures
        assert validate_pdf_signature(sig, ctx).bottom_line
        attrs = sig.signer_info["signed_attrs"]
        (ess,) = [a["values"][0] for a in attrs if a["type"].native == "signing_certificate_v2"]
        (cert_id,) = ess["certs"]
        assert cert_id["cert_hash"].native == hashlib.sha256(cert_der).digest()
        assert cert_id["issuer_serial"]["serial_number"].native == sealer.certificate.serial_number


def test_ecdsa_keys_sign_too(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, passphrase=b"pw", key_type="p256")
    signed = Sealer.from_pkcs12(keys.signer_p12, b"pw").sign(_pdf())
    (sig,) = PdfFileReader(BytesIO(signed)).embedded_signatures
    ctx = ValidationContext(trust_roots=[load_cert_from_pemder(str(keys.ca_cert))])
    assert validate_pdf_signature(sig, ctx).bottom_line


def test_an_unknown_key_type_is_refused_before_any_file_is_written(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^the key type must be one of rsa2048, p256, got 'dsa'$"
    ):
        make_keys(tmp_path / "keys", passphrase=b"pw", key_type="dsa")
    assert not (tmp_path / "keys").exists()


def test_the_policy_takes_the_profile_choices() -> None:
    policy = policy_from_settings(
        Settings(
            signing_digest="SHA-512", signing_rsa_padding="pss", signing_appearance="invisible"
        )
    )
    assert policy.digest is Digest.SHA512 and policy.pss and policy.painter is None
    assert (
        policy.level is Level.B_B and policy_from_settings(Settings(), level="lta").level.long_term
    )
    assert policy_from_settings(Settings()).painter is not None  # visible by default
    with pytest.raises(ConfigError, match=r"^the digest must be one of sha256, .*got 'md5'$"):
        SigningPolicy(digest="md5")  # type: ignore[arg-type]  # text, as callers may pass it


def test_wrong_passphrase_is_one_line_without_secret(pki: KeyPaths) -> None:
    with pytest.raises(SigningError) as info:
        Sealer.from_pkcs12(pki.signer_p12, b"wrong-passphrase-xyz")
    message = str(info.value)
    assert "wrong passphrase" in message and "\n" not in message
    assert "wrong-passphrase-xyz" not in message and PASSPHRASE.decode() not in message
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="cannot read the PKCS#12 file"):
        Sealer.from_pkcs12(tmp_path / "nope.p12", b"x")


def test_repr_hides_key(sealer: Sealer) -> None:
    assert "PRIVATE" not in repr(sealer) and "Sealer(subject=" in repr(sealer)


def _cert(
    key_size: int = 2048,
    *,
    days: int = 30,
    start: int = -1,
    ku: bool = True,
    ec_curve: ec.EllipticCurve | None = None,
) -> x509.Certificate:
    key = (
        ec.generate_private_key(ec_curve) if ec_curve else rsa.generate_private_key(65537, key_size)
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.now(UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now + timedelta(days=start))
        .not_valid_after(now + timedelta(days=start + days))
    )
    if not ku:
        b = b.add_extension(
            x509.KeyUsage(False, False, True, False, False, False, False, False, False), True
        )
    return b.sign(key, hashes.SHA256())


def test_certificate_checks_refuse_each_bad_case() -> None:
    check_signing_certificate(_cert())
    with pytest.raises(SigningError, match="expired"):
        check_signing_certificate(_cert(days=1, start=-10))
    with pytest.raises(SigningError, match="not valid before"):
        check_signing_certificate(_cert(start=5))
    with pytest.raises(SigningError, match="RSA-1024"):
        check_signing_certificate(_cert(1024))
    with pytest.raises(SigningError, match="EC-192"):
        check_signing_certificate(_cert(ec_curve=ec.SECP192R1()))
    with pytest.raises(SigningError, match="digitalSignature"):
        check_signing_certificate(_cert(ku=False))


def test_expired_signer_is_refused_at_load(tmp_path: Path) -> None:
    keys = make_keys(
        tmp_path, passphrase=b"pw", valid_days=1, now=datetime.now(UTC) - timedelta(days=30)
    )
    with pytest.raises(SigningError, match="expired"):
        Sealer.from_pkcs12(keys.signer_p12, b"pw")
