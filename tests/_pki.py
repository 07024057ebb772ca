"""A test PKI with a TSA, OCSP and CRLs (certomancer), served in-process, never on a network.

`make_lab_pki` generates the keys, fills tests/pki/certomancer.yml with dates relative to
today (signers valid from a month ago for four years, the TSA for ten, one signer revoked
20 days ago, before the latest weekly CRL) and writes what certissuer reads: PKCS#12 files,
PEM keys and certificates.
`LabPKI.services()` routes every HTTP request that `requests` makes to certomancer's
Illusionist (requests_mock): pyHanko's `RequestsHTTPTimeStamper` and `RequestsFetcherBackend`
then talk to the test TSA, OCSP responder and CRL repository in this process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests_mock
from asn1crypto import x509 as asn1_x509
from certomancer.integrations.illusionist import Illusionist
from certomancer.registry import CertomancerConfig, PKIArchitecture
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

CONFIG = Path(__file__).resolve().parent / "pki" / "certomancer.yml"
SIGNER_YEARS = 4
PASSPHRASE = b"pki-passphrase-71c0"

_KEYS = {
    "root": "ec",
    "ocsp": "ec",
    "tsa": "rsa",
    "alice": "rsa",
    "bob": "ec",
    "mallory": "rsa",
    "rogue-root": "ec",
    "rogue-tsa": "ec",
}


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class LabPKI:
    """The certomancer architecture and the files made from it."""

    arch: PKIArchitecture
    directory: Path
    now: datetime
    signer_expires: datetime
    tsa_url: str
    rogue_tsa_url: str

    def cert(self, label: str) -> asn1_x509.Certificate:
        return self.arch.get_cert(label)

    def crypto_cert(self, label: str) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.arch.get_cert(label).dump())

    def pem(self, label: str) -> Path:
        """The certificate `label` as a PEM file (for trust roots)."""
        path = self.directory / f"{label}.cert.pem"
        if not path.exists():
            path.write_bytes(self.crypto_cert(label).public_bytes(serialization.Encoding.PEM))
        return path

    def key_path(self, label: str) -> Path:
        return self.directory / "keys" / f"{label}.key.pem"

    def p12(self, label: str, passphrase: bytes = PASSPHRASE) -> Path:
        """A PKCS#12 file with the key and certificate of `label` and the root."""
        # One file per passphrase: a file made for one must not be handed out for another.
        tag = "" if passphrase == PASSPHRASE else "-" + hashlib.sha256(passphrase).hexdigest()[:8]
        path = self.directory / f"{label}{tag}.p12"
        if not path.exists():
            key = serialization.load_pem_private_key(self.key_path(label).read_bytes(), None)
            assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
            path.write_bytes(
                pkcs12.serialize_key_and_certificates(
                    label.encode(),
                    key,
                    self.crypto_cert(label),
                    [self.crypto_cert("root")],
                    serialization.BestAvailableEncryption(passphrase),
                )
            )
        return path

    @contextmanager
    def services(self, at: datetime | None = None) -> Iterator[requests_mock.Mocker]:
        """Serve the TSAs, the OCSP responder and the CRLs to `requests`, in-process."""
        with requests_mock.Mocker() as mocker:
            Illusionist(self.arch, at_time=at).register(mocker)
            yield mocker


def make_lab_pki(directory: Path, *, now: datetime | None = None) -> LabPKI:
    """Generate keys and the certomancer architecture under `directory`."""
    now = now or datetime.now(UTC)
    keydir = directory / "keys"
    keydir.mkdir(parents=True, exist_ok=True)
    for label, kind in _KEYS.items():
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(65537, 2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        (keydir / f"{label}.key.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    start = now - timedelta(days=30)
    signer_expires = start + timedelta(days=365 * SIGNER_YEARS)
    text = CONFIG.read_text(encoding="utf-8")
    for name, value in {
        "keydir": str(keydir),
        "root_from": _iso(now - timedelta(days=3650)),
        "root_to": _iso(now + timedelta(days=365 * 30)),
        "tsa_to": _iso(now + timedelta(days=365 * 10)),
        "signer_from": _iso(start),
        "signer_to": _iso(signer_expires),
        "revoked_since": _iso(now - timedelta(days=20)),
    }.items():
        text = text.replace("{" + name + "}", value)
    config_path = directory / "certomancer.yml"
    config_path.write_text(text, encoding="utf-8")
    config = CertomancerConfig.from_file(str(config_path), key_search_dir=str(directory))
    arch = config.get_pki_arch("lab")
    tsa = arch.service_registry.get_tsa_info("tsa").url
    rogue = arch.service_registry.get_tsa_info("rogue-tsa").url
    return LabPKI(arch, directory, now, signer_expires, tsa, rogue)


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    """The certomancer test PKI (root, OCSP, CRLs, TSA; a rogue root and TSA), built once."""
    return make_lab_pki(tmp_path_factory.mktemp("lab-pki"))


@pytest.fixture
def pki_services(lab_pki: LabPKI) -> Iterator[requests_mock.Mocker]:
    """The test PKI's TSA, OCSP responder and CRL repository, answering `requests` in-process."""
    with lab_pki.services() as mocker:
        yield mocker
