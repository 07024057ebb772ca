"""Make a lab's keys with the cryptography library: a CA, a signing certificate, a token key.

``certissuer keys init DIR`` calls `make_keys`. The result is a *self-made* PKI, fit for demos,
tests and a lab's internal trial; a legally valid signature needs a certificate from a licensed
CA (VNPT-CA, Viettel-CA, ...) on a USB token.

>>> paths = make_keys(Path("keys"), passphrase=b"demo", organisation="Demo lab")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import assert_never

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from certissuer.config import Choice
from certissuer.errors import ConfigError
from certissuer.token import TokenKey

__all__ = ["KeyPaths", "KeyType", "make_keys"]


class KeyType(Choice, label="key type"):
    """The kind of key `make_keys` makes for the CA and the signer."""

    RSA2048 = "rsa2048"
    """RSA, 2048 bits, signing with PKCS#1 v1.5."""
    P256 = "p256"
    """ECDSA on NIST P-256."""


@dataclass(frozen=True, slots=True)
class KeyPaths:
    """Where `make_keys` wrote each file."""

    ca_cert: Path
    signer_p12: Path
    signer_cert: Path
    token_key: Path
    token_public: Path


def _name(common: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def make_keys(
    directory: Path,
    *,
    passphrase: bytes,
    organisation: str = "certissuer demo lab",
    signer_name: str = "Demo signer",
    key_type: KeyType | str = KeyType.RSA2048,
    valid_days: int = 3650,
    now: datetime | None = None,
    overwrite: bool = False,
) -> KeyPaths:
    """Write a CA certificate, a PKCS#12 signer and an Ed25519 token key into `directory`.

    `passphrase` encrypts the PKCS#12 file. `key_type` is a `KeyType` or its name (``rsa2048``,
    ``p256``). `now` fixes the clock for tests. Raises `ConfigError` for an unknown key type,
    and refuses to overwrite existing keys unless `overwrite` is set.
    """
    kind = KeyType.parse(key_type)
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    paths = KeyPaths(
        directory / "ca.pem",
        directory / "signer.p12",
        directory / "signer.pem",
        directory / "token-key.pem",
        directory / "token-public.pem",
    )
    existing = [p for p in dataclasses.astuple(paths) if p.exists()] if not overwrite else []
    if existing:
        raise ConfigError(
            f"{existing[0]}: a key file is already there; refusing to overwrite it",
            hint="choose another folder or pass --force",
        )

    def new_key() -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        match kind:
            case KeyType.P256:
                return ec.generate_private_key(ec.SECP256R1())
            case KeyType.RSA2048:
                return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert_never(kind)

    ca_key, signer_key = new_key(), new_key()
    ca_name = _name(f"{organisation} CA", organisation)
    start = now - timedelta(days=1)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days + 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name, organisation))
        .issuer_name(ca_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # digitalSignature + contentCommitment (non-repudiation), as PAdES signers carry
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(paths.ca_cert, ca_cert.public_bytes(pem))
    _write(paths.signer_cert, signer_cert.public_bytes(pem))
    _write(
        paths.signer_p12,
        pkcs12.serialize_key_and_certificates(
            signer_name.encode(),
            signer_key,
            signer_cert,
            [ca_cert],
            serialization.BestAvailableEncryption(passphrase),
        ),
        private=True,
    )
    token = TokenKey.generate()
    _write(paths.token_key, token.pem(), private=True)
    _write(paths.token_public, token.public.pem())
    return paths
