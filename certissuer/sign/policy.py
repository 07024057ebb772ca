"""Choosing how to sign: the PAdES level, the time-stamping authority, the trust roots and
the appearance, from arguments or from the lab profile's ``[signing]`` section.

>>> policy = SigningPolicy(level=Level.parse("b-t"), tsa_url="http://tsa.example/")
>>> policy.level.timestamped
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certissuer.config import Appearance, Digest, Level, RsaPadding, TsaUnavailable
from certissuer.errors import ConfigError
from certissuer.sign._appearance import StampPainter

if TYPE_CHECKING:
    from pyhanko_certvalidator.fetchers.api import FetcherBackend

    from certissuer.config import Settings

__all__ = [
    "Level",
    "SigningPolicy",
    "asn1_certificate",
    "load_certificates",
    "policy_from_settings",
]


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    """How a `Sealer` signs: level, time stamping, revocation checks, appearance."""

    level: Level = Level.B_B
    tsa_url: str | Sequence[str] | None = None
    """RFC 3161 time-stamping authority, or several asked in order; needed from B-T up."""
    tsa_budget: float = 30.0
    """Seconds the `Sealer` may lose to authorities that do not answer; then it stops asking."""
    tsa_unavailable: TsaUnavailable = TsaUnavailable.REFUSE
    """No authority answered: refuse, or sign a B-T document at B-B and say so."""
    trust_roots: tuple[asn1_x509.Certificate, ...] = ()
    """Roots of the signer's and the TSA's chains: B-LT collects revocation data up to them."""
    revocation_check: bool = True
    """Refuse a revoked signing certificate (checked once, when the certificate names a CRL
    or OCSP responder)."""
    digest: Digest = Digest.SHA256
    """The hash signed; given as text ("SHA-256"), it is read as `Digest.parse` reads it."""
    pss: bool = False
    """Sign RSA keys with RSASSA-PSS instead of PKCS#1 v1.5."""
    painter: StampPainter | None = None
    """Draws visible signatures; None signs invisibly."""
    organisation: str = ""
    """Organisation shown in a visible signature (else the certificate's O attribute)."""
    timeout: float = 10.0
    """Seconds to wait for the TSA, OCSP responders and CRL servers."""
    fetcher_backend: FetcherBackend | None = field(default=None, compare=False)
    """How revocation data is fetched; None: the `requests` backend."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", Digest.parse(self.digest))
        object.__setattr__(self, "tsa_unavailable", TsaUnavailable.parse(self.tsa_unavailable))

    @property
    def tsa_urls(self) -> tuple[str, ...]:
        """The time-stamping authorities, in the order they are asked."""
        if not self.tsa_url:
            return ()
        if isinstance(self.tsa_url, str):
            return (self.tsa_url,)
        return tuple(self.tsa_url)


def load_certificates(paths: Iterable[Path]) -> list[x509.Certificate]:
    """Certificates from PEM (one or many per file) or DER files; `ConfigError` names the file."""
    certs: list[x509.Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
            if b"-----BEGIN" in data:
                certs.extend(x509.load_pem_x509_certificates(data))
            else:
                certs.append(x509.load_der_x509_certificate(data))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot load the certificate: {exc}") from None
    return certs


def asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    """`cert` as asn1crypto parses it, the form pyHanko takes."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def policy_from_settings(settings: Settings, *, level: Level | str | None = None) -> SigningPolicy:
    """The `SigningPolicy` the lab profile's ``[signing]`` section describes.

    `level` overrides ``[signing] level`` (as a `Level` or its name); `ConfigError` names a
    level that does not exist or a certificate file that cannot be read.
    """
    painter = None
    if settings.signing_appearance is Appearance.VISIBLE:
        painter = StampPainter(
            seal=settings.signing_seal_image,
            signature=settings.signing_signature_image,
            seal_mm=settings.signing_seal_size_mm,
        )
    roots = load_certificates([*settings.signing_trust_roots, *settings.signing_tsa_roots])
    return SigningPolicy(
        level=Level.parse(level) if level else settings.signing_level,
        tsa_url=settings.signing_tsa_url or None,
        tsa_budget=settings.signing_tsa_budget_s,
        tsa_unavailable=settings.signing_tsa_unavailable,
        trust_roots=tuple(asn1_certificate(c) for c in roots),
        revocation_check=settings.signing_revocation_check,
        digest=settings.signing_digest,
        pss=settings.signing_rsa_padding is RsaPadding.PSS,
        painter=painter,
        organisation=settings.lab_name_vi,
    )
