"""Every patch certissuer makes to pyHanko's internals, in one place.

pyHanko is used through its public API except here. Each piece below leans on something
pyHanko does not promise to keep; pyproject.toml pins pyHanko to a compatible range and
tests/test_sign_pyhanko.py fails when one of these internals moves:

* `EncodedCertId`, `CertIdOnce`: the signing-certificate-v2 attribute encoded once per
  signer, through the signer's ``_signed_attr_providers`` hook.
* `TokenCertsOnce`: a token signer's own certificate sent once, not twice.
* `KeptKeySigner`: a `SimpleSigner` that signs with the parsed `cryptography` key.
* `PdfBytesPage`: a PDF page in memory as a stamp's background (``PdfContent._ensure_writer``).
* `probe_cms_size`, `reserved_size`: the fixed ``bytes_reserved`` for the signature, measured
  once from a probe signature, so pyHanko signs each document once instead of signing a dry
  run to measure it.

>>> signer = KeptKeySigner(key, signing_cert=cert, signing_key=key_info)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from asn1crypto import tsp as asn1_tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.pdf_utils.content import PdfContent
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer, SimpleSigner
from pyhanko_certvalidator.registry import CertificateStore, SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

__all__ = [
    "CMS_MARGIN",
    "TIMESTAMP_ROOM",
    "CertIdOnce",
    "EncodedCertId",
    "KeptKeySigner",
    "PdfBytesPage",
    "PrivateKey",
    "TokenCertsOnce",
    "probe_cms_size",
    "reserved_size",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The key types certissuer signs with."""

TIMESTAMP_ROOM = 12288
"""Hex digits reserved for a signature timestamp token (the TSA's certificates and signature)."""

CMS_MARGIN = 1024
"""Bytes added to the probe CMS's size: an ECDSA signature's length varies by a few bytes."""


def reserved_size(cms_size: int) -> int:
    """``bytes_reserved`` for a signature whose probe CMS was `cms_size` bytes, timestamp aside.

    pyHanko's ``bytes_reserved`` counts hexadecimal digits (``/Contents`` holds the CMS
    hex-encoded): twice the CMS size, plus `CMS_MARGIN` for what differs between the probe and
    a document's signature. Add `TIMESTAMP_ROOM` for a timestamped signature.
    """
    return 2 * (cms_size + CMS_MARGIN)


async def probe_cms_size(signer: Signer, digest_algorithm: str) -> int:
    """Sign a probe digest with `signer` and return the size of the CMS it emits, in bytes.

    The CMS is the one a PAdES signature carries: every certificate the signer sends (a token
    signer sends all those on the token as well as the configured chain), the signed
    attributes and a real signature. Sizing from it fits any key type and chain length.
    """
    probe = hashlib.new(digest_algorithm, b"certissuer size probe").digest()
    cms = await signer.async_sign(
        probe,
        digest_algorithm,
        use_pades=True,
        signed_attr_settings=PdfCMSSignedAttributes(signing_time=datetime.now(UTC)),
    )
    return len(cms.dump())


class EncodedCertId(CMSAttributeProvider):
    """The signing-certificate-v2 attribute (RFC 5035), encoded once per signer.

    pyHanko builds it anew for every signature from the parsed certificate, and asn1crypto
    then re-encodes the issuer's name each time the signed attributes are serialised (about
    3 ms a signature). The value depends on the certificate alone: here it is encoded once
    and each signature gets a fresh object parsed from those bytes, which serialise as is.
    """

    attribute_type = "signing_certificate_v2"

    def __init__(self, cert: asn1_x509.Certificate) -> None:
        self.signing_cert = cert
        self._der: bytes = as_signing_certificate_v2(cert).dump()

    async def build_attr_value(self, dry_run: bool = False) -> asn1_tsp.SigningCertificateV2:
        return asn1_tsp.SigningCertificateV2.load(self._der)


class CertIdOnce:
    """Mixin for pyHanko signers: their signed attributes carry `EncodedCertId`."""

    _cert_id: EncodedCertId | None = None
    signing_cert: asn1_x509.Certificate

    def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> Iterable[Any]:
        # NOTE: pyHanko's internal hook (pdf_cms.Signer); if it is renamed, the stock
        # providers run and only the speed-up is lost (tests/test_sign.py notices).
        cert = self.signing_cert  # a token signer reads it from the token on first use
        if self._cert_id is None or self._cert_id.signing_cert is not cert:
            self._cert_id = EncodedCertId(cert)
        stock = super()._signed_attr_providers(*args, **kwargs)  # type: ignore[misc]  # the signer's
        for provider in stock:
            if isinstance(provider, SigningCertificateV2Provider) and provider.signing_cert is cert:
                yield self._cert_id
            else:
                yield provider


class TokenCertsOnce:
    """Mixin for pyHanko's PKCS#11 signer: each certificate goes into the CMS once.

    The signer pulls every certificate on the token into its registry, its own among them,
    then adds its own again when it packages the signature (a set of freshly made objects,
    so nothing is merged): about 1 KiB wasted per signature. The registry here drops it.
    """

    _loaded: bool
    _signing_cert: asn1_x509.Certificate | None
    _cert_registry: CertificateStore

    def _load_objects(self) -> None:
        # NOTE: pyHanko's internal loader (pkcs11.PKCS11Signer); tests/test_pkcs11_tokens.py
        # counts the certificates in a token signature.
        if self._loaded:
            return
        super()._load_objects()  # type: ignore[misc]
        if self._signing_cert is not None:
            own = self._signing_cert.dump()
            self._cert_registry = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
                [c for c in self._cert_registry if c.dump() != own]
            )


class KeptKeySigner(CertIdOnce, SimpleSigner):
    """A SimpleSigner that keeps the parsed private key instead of re-parsing it per call,
    and encodes its certificate's signed attribute once (`CertIdOnce`)."""

    def __init__(self, private: PrivateKey, **kwargs: object) -> None:
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


class PdfBytesPage(PdfContent):
    """The first page of a PDF held in memory, imported as the appearance's background."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data

    def render(self) -> bytes:
        writer = self._ensure_writer
        xobj = writer.import_page_as_xobject(PdfFileReader(BytesIO(self._data)), page_ix=0)
        self.resources.xobject["/Stamp"] = xobj
        x1, y1, x2, y2 = xobj.get_object()["/BBox"]
        self.box = BoxConstraints(width=abs(x1 - x2), height=abs(y1 - y2))
        return b"/Stamp Do"
