"""PAdES signing with pyHanko: the lab's seal on every certificate.

A `Sealer` is built once (it parses the key once: cryptography validates an RSA key on every
load, about 40 ms) and signs many documents with a fixed signature size (pyHanko otherwise
signs each document twice to measure it). Level: PAdES baseline B-B.

>>> sealer = Sealer.from_pkcs12(Path("keys.example/signer.p12"), b"demo")  # doctest: +SKIP
>>> signed = sealer.sign(pdf_bytes, info={"CertissuerQR": url})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_cms import SimpleSigner
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

from certissuer.errors import SigningError

__all__ = ["Sealer", "check_signing_certificate"]

_logger = logging.getLogger(__name__)
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def check_signing_certificate(cert: x509.Certificate, *, now: datetime | None = None) -> None:
    """Refuse a certificate that may not sign (Circular 15/2025/TT-BKHCN).

    Checks the validity period at `now`, the key (RSA ≥ 2048 bits or ECDSA ≥ 256 bits) and the
    digital-signature key usage. Raises `SigningError` with a one-line reason.
    """
    now = now or datetime.now(UTC)
    subject = cert.subject.rfc4514_string()
    if now < cert.not_valid_before_utc:
        raise SigningError(
            f"the signing certificate '{subject}' is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > cert.not_valid_after_utc:
        raise SigningError(
            f"the signing certificate '{subject}' expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size < 2048:
            raise SigningError(f"the signing key is RSA-{pub.key_size}; at least 2048 bits needed")
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        if pub.curve.key_size < 256:
            raise SigningError(f"the signing key is EC-{pub.curve.key_size}; at least 256 needed")
    else:
        raise SigningError(f"the signing key type {type(pub).__name__} is not allowed")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise SigningError(
            f"the signing certificate '{subject}' lacks the digitalSignature key usage"
        )


class _KeptKeySigner(SimpleSigner):
    """A SimpleSigner that keeps the parsed private key instead of re-parsing it per call."""

    def __init__(self, private: _PrivateKey, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._private = private

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        algo = mechanism.signature_algo
        if algo == "rsassa_pkcs1v15" and isinstance(self._private, rsa.RSAPrivateKey):
            return self._private.sign(
                data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm)
            )
        if algo == "rsassa_pss" and isinstance(self._private, rsa.RSAPrivateKey):
            pad, hash_algo = process_pss_params(mechanism["parameters"])
            return self._private.sign(data, pad, hash_algo)
        if algo == "ecdsa" and isinstance(self._private, ec.EllipticCurvePrivateKey):
            return self._private.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        return super().sign_raw(data, digest_algorithm)


class Sealer:
    """Signs PDFs with one key and certificate chain. Build it once, sign many documents."""

    def __init__(
        self,
        private: _PrivateKey,
        cert: x509.Certificate,
        chain: list[x509.Certificate],
        *,
        origin: str = "signing key",
        now: datetime | None = None,
    ) -> None:
        check_signing_certificate(cert, now=now)
        der = serialization.Encoding.DER
        self.certificate = cert
        self.origin = origin
        asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(der))
        asn1_chain = [asn1_x509.Certificate.load(c.public_bytes(der)) for c in chain]
        key_info = asn1_keys.PrivateKeyInfo.load(
            private.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        registry = SimpleCertificateStore.from_certs(asn1_chain)  # type: ignore[no-untyped-call]
        self._signer = _KeptKeySigner(
            private, signing_cert=asn1_cert, signing_key=key_info, cert_registry=registry
        )
        # The CMS holds the certificates, signed attributes and the signature; leave room.
        size = sum(len(c.public_bytes(der)) for c in [cert, *chain]) + 4096
        self._reserved = size + size % 2  # hex-encoded in /Contents: must be even

    def __repr__(self) -> str:
        return f"Sealer(subject={self.subject!r})"

    @property
    def subject(self) -> str:
        """The signer's distinguished name."""
        return self.certificate.subject.rfc4514_string()

    @classmethod
    def from_pkcs12(
        cls, path: Path, passphrase: bytes | None, *, now: datetime | None = None
    ) -> Sealer:
        """Load a PKCS#12 file. A wrong passphrase is a one-line `SigningError`."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(
                f"{path}: cannot read the PKCS#12 file ({exc.strerror})",
                hint="set [signing] pkcs12 in the lab profile",
            ) from None
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, passphrase)
        except (ValueError, TypeError):
            # NOTE: never chain the original exception: keep secrets out of tracebacks.
            raise SigningError(
                f"{path}: cannot open the PKCS#12 file: wrong passphrase or damaged file"
            ) from None
        if key is None or cert is None:
            raise SigningError(f"{path}: the PKCS#12 file holds no private key and certificate")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SigningError(f"{path}: the key type {type(key).__name__} is not allowed")
        _logger.debug("loaded signer %s from %s", cert.subject.rfc4514_string(), path)
        return cls(key, cert, list(extra), origin=str(path), now=now)

    def sign(
        self,
        pdf: bytes,
        *,
        info: Mapping[str, str] | None = None,
        reason: str | None = None,
        location: str | None = None,
    ) -> bytes:
        """Sign `pdf` (PAdES B-B, SHA-256) and return the signed bytes.

        `info` adds entries to the document information dictionary (for example the QR URL), in
        the same revision as the signature, so they are covered by it.
        """
        try:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
            if info:
                self._add_info(writer, info)
            meta = PdfSignatureMetadata(
                field_name="Signature1",
                subfilter=SigSeedSubFilter.PADES,
                md_algorithm="sha256",
                reason=reason,
                location=location,
            )
            out = BytesIO()
            PdfSigner(meta, signer=self._signer).sign_pdf(
                writer, output=out, bytes_reserved=self._reserved
            )
        except (PdfError, PyHankoSigningError, ValueError, KeyError) as exc:
            raise SigningError(f"could not sign the document: {exc}") from exc
        return out.getvalue()

    @staticmethod
    def _add_info(writer: IncrementalPdfFileWriter, info: Mapping[str, str]) -> None:
        ref = writer.trailer.raw_get("/Info")
        if isinstance(ref, generic.IndirectObject):
            info_dict = ref.get_object()  # type: ignore[no-untyped-call]
            assert isinstance(info_dict, generic.DictionaryObject)
            writer.mark_update(ref)
        else:
            info_dict = generic.DictionaryObject()  # type: ignore[no-untyped-call]
            writer.set_info(info_dict)
        for key, value in info.items():
            info_dict[generic.NameObject("/" + key)] = generic.TextStringObject(value)
