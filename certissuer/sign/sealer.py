"""PAdES signing with pyHanko: the lab's legal signature on every certificate.

A `Sealer` holds one signing key (a PKCS#12 file, a PEM key and chain, or a PKCS#11 token)
and a `SigningPolicy` (PAdES level, time-stamping authority, trust roots, visible appearance).
Build it once and sign many documents: the key is parsed once (cryptography validates an RSA
key on every load, about 40 ms) and the signature size is fixed (pyHanko otherwise signs each
document twice to measure it).

Levels (ETSI EN 319 142-1): **B-B** a CAdES signature over the whole file; **B-T** plus an
RFC 3161 timestamp from a TSA of `SigningPolicy.tsa_url` (several are asked in turn, see
`certissuer.sign._tsa`); **B-LT** plus the certificates,
CRLs and OCSP responses of the signer and the TSA in the document security store (DSS), so
the signature can be checked offline after the signer's certificate expires; **B-LTA** plus a
document timestamp over all of it, which can be renewed before the TSA's certificate expires.

>>> sealer = Sealer.from_pkcs12(Path("keys.example/signer.p12"), b"demo")  # doctest: +SKIP
>>> signed = sealer.sign(pdf_bytes, info={"CertissuerQR": url})  # doctest: +SKIP
>>> later = sealer.approve(signed)  # a second signer fills the reserved field  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtensionOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import AxisAlignment, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter, append_signature_field
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata, PdfSigner
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.stamp.static import StaticStampStyle
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, RevokedError, ValidationError
from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend
from pyhanko_certvalidator.registry import SimpleCertificateStore

from certissuer.config import TsaUnavailable
from certissuer.errors import ConfigError, SigningError
from certissuer.sign._appearance import Box, SignatureSlot, locate_slot
from certissuer.sign._pkcs11 import open_token_signer
from certissuer.sign._pyhanko import (
    TIMESTAMP_ROOM,
    KeptKeySigner,
    PdfBytesPage,
    PrivateKey,
    probe_cms_size,
    reserved_size,
)
from certissuer.sign._tsa import NoTimestamp, TsaFailover
from certissuer.sign.policy import (
    Level,
    SigningPolicy,
    asn1_certificate,
    load_certificates,
    policy_from_settings,
)

if TYPE_CHECKING:
    from certissuer.config import KeySource, Settings

__all__ = [
    "APPROVAL_FIELD",
    "SIGNATURE_FIELD",
    "Sealer",
    "check_signing_certificate",
]

_logger = logging.getLogger(__name__)

SIGNATURE_FIELD = "Signature1"
"""The lab's (first) signature field."""
APPROVAL_FIELD = "Approval"
"""The field a certification signature leaves for the head of the lab's approval."""


def check_signing_certificate(cert: x509.Certificate, *, now: datetime | None = None) -> None:
    """Refuse a certificate that may not sign (Circular 15/2025/TT-BKHCN).

    Checks the validity period at `now`, the key (RSA ≥ 2048 bits or ECDSA ≥ 256 bits) and the
    digital-signature key usage. Raises `SigningError` with a one-line reason. Revocation is
    checked by `Sealer`, which knows the trust roots and how to reach the CA.
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


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _declares_revocation_info(cert: x509.Certificate) -> bool:
    for oid in (ExtensionOID.CRL_DISTRIBUTION_POINTS, ExtensionOID.AUTHORITY_INFORMATION_ACCESS):
        try:
            cert.extensions.get_extension_for_oid(oid)
        except x509.ExtensionNotFound:
            continue
        return True
    return False


class Sealer:
    """Signs PDFs with one key and certificate chain. Build it once, sign many documents."""

    def __init__(
        self,
        signer: Signer,
        cert: x509.Certificate,
        chain: Sequence[x509.Certificate],
        *,
        origin: str = "signing key",
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        """Wrap the pyHanko `signer` whose certificate is `cert` (with its `chain`).

        Checks the certificate (`check_signing_certificate`) and, when `policy` asks for it
        and the certificate names a CRL or OCSP responder, that it is not revoked. `close`
        releases the key (a PKCS#11 session). Raises `SigningError`.
        """
        self._close = close
        self._tsa: TsaFailover | None = None  # one per run: it keeps the TSA time budget
        self.downgraded: str | None = None
        """Why the last `sign` made a B-B signature instead of B-T: which time-stamping
        authorities were asked and why each failed (``[signing] tsa_unavailable =
        "downgrade"``); None when it signed at the level asked."""
        try:
            check_signing_certificate(cert, now=now)
            self.certificate = cert
            self.chain = list(chain)
            self.origin = origin
            self.policy = policy or SigningPolicy()
            self._signer = signer
            self._reserved = self._measure()
            if self.policy.revocation_check and _declares_revocation_info(cert):
                self.check_revocation(now=now)
        except BaseException:
            self.close()
            raise

    def _measure(self) -> int:
        """``bytes_reserved`` for this signer, from one probe signature (once per Sealer).

        A token signer sends every certificate on the token besides the configured chain, so
        the space is sized from what the signer emits, not from the certificates known here.
        """
        try:
            size = asyncio.run(probe_cms_size(self._signer, self.policy.digest.value))
        except SigningError:
            raise
        except Exception as exc:  # the key's own layer: PKCS#11, cryptography
            raise SigningError(
                f"{self.origin}: the key cannot sign ({type(exc).__name__}: {exc})"
            ) from None
        _logger.debug("%s: probe signature %d bytes", self.origin, size)
        return reserved_size(size)

    @classmethod
    def from_key(
        cls,
        private: PrivateKey,
        cert: x509.Certificate,
        chain: Sequence[x509.Certificate],
        *,
        origin: str = "signing key",
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
    ) -> Sealer:
        """A Sealer for a key held in memory (the fast path: the key is parsed once)."""
        policy = policy or SigningPolicy()
        der = serialization.Encoding.DER
        key_info = asn1_keys.PrivateKeyInfo.load(
            private.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        registry = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_certificate(c) for c in chain]
        )
        signer = KeptKeySigner(
            private,
            signing_cert=asn1_certificate(cert),
            signing_key=key_info,
            cert_registry=registry,
            prefer_pss=policy.pss,
        )
        return cls(signer, cert, chain, origin=origin, policy=policy, now=now)

    def __repr__(self) -> str:
        return f"Sealer(subject={self.subject!r}, level={self.policy.level.value!r})"

    def __enter__(self) -> Sealer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the key (closes a PKCS#11 session); the Sealer cannot sign afterwards."""
        if self._close is not None:
            close, self._close = self._close, None
            close()

    @property
    def subject(self) -> str:
        """The signer's distinguished name."""
        return self.certificate.subject.rfc4514_string()

    @property
    def signer_name(self) -> str:
        """The signer's common name (or the whole subject when it has none)."""
        names = self.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.subject

    def with_policy(self, **changes: Any) -> Sealer:
        """A Sealer sharing this key with some policy fields changed (for `--level`)."""
        twin = object.__new__(Sealer)
        twin.__dict__.update(self.__dict__)
        twin.policy = replace(self.policy, **changes)
        twin._close = None  # the original owns the key
        return twin

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def from_pkcs12(
        cls,
        path: Path,
        passphrase: bytes | None,
        *,
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
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
        if not isinstance(key, PrivateKey):
            raise SigningError(f"{path}: the key type {type(key).__name__} is not allowed")
        _logger.debug("loaded signer %s from %s", cert.subject.rfc4514_string(), path)
        return cls.from_key(key, cert, list(extra), origin=str(path), policy=policy, now=now)

    @classmethod
    def from_pem(
        cls,
        key_path: Path,
        cert_path: Path,
        chain: Iterable[Path] = (),
        passphrase: bytes | None = None,
        *,
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
    ) -> Sealer:
        """Load a PEM (or DER) private key, its certificate and the CA chain."""
        try:
            data = key_path.read_bytes()
        except OSError as exc:
            raise SigningError(f"{key_path}: cannot read the key file ({exc.strerror})") from None
        try:
            if b"-----BEGIN" in data:
                key = serialization.load_pem_private_key(data, passphrase)
            else:
                key = serialization.load_der_private_key(data, passphrase)
        except (ValueError, TypeError):
            raise SigningError(
                f"{key_path}: cannot open the private key: wrong passphrase or damaged file"
            ) from None
        if not isinstance(key, PrivateKey):
            raise SigningError(f"{key_path}: the key type {type(key).__name__} is not allowed")
        try:
            (cert,) = load_certificates([cert_path])[:1]
        except (ConfigError, ValueError) as exc:
            raise SigningError(str(exc)) from None
        if _spki(cert.public_key()) != _spki(key.public_key()):
            raise SigningError(f"{cert_path}: the certificate does not belong to {key_path}")
        return cls.from_key(
            key, cert, load_certificates(chain), origin=str(key_path), policy=policy, now=now
        )

    @classmethod
    def from_pkcs11(
        cls,
        module: Path,
        *,
        token_label: str = "",
        token_serial: str = "",
        pin: str | None,
        key_label: str | None = None,
        key_id: bytes | None = None,
        cert_label: str | None = None,
        chain: Iterable[Path] = (),
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
    ) -> Sealer:
        """Use a key on a PKCS#11 token or HSM (a USB token from a Vietnamese CA).

        The token is chosen by `token_label` and/or `token_serial`, the key by `key_label` or
        `key_id`, its certificate by `cert_label` (default: the key's label) or else the key's
        id. `pin` logs in once (None: the reader's PIN pad, when it has one); a wrong PIN is a
        one-line `SigningError` that does not contain it. Close the Sealer (or use it as a
        context manager) to end the session.
        """
        opened = open_token_signer(
            module,
            token_label=token_label,
            token_serial=token_serial,
            pin=pin,
            key_label=key_label,
            key_id=key_id,
            cert_label=cert_label,
            chain=[asn1_certificate(c) for c in load_certificates(chain)],
            pss=(policy or SigningPolicy()).pss,
        )
        origin = f"PKCS#11 token '{token_label or token_serial}'"
        return cls(
            opened.signer,
            opened.certificate,
            opened.chain,
            origin=origin,
            policy=policy,
            now=now,
            close=opened.close,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        secret: bytes | None,
        *,
        level: Level | str | None = None,
        now: datetime | None = None,
    ) -> Sealer:
        """The lab's Sealer from the profile: the key source and `[signing]` policy it names.

        `secret` is the PKCS#12 or key passphrase, or the token PIN. `level` overrides
        ``[signing] level``. Raises `ConfigError` or `SigningError`.
        """
        policy = policy_from_settings(settings, level=level)
        source = settings.signing_source()
        if source is None:
            raise ConfigError(
                "no signing key configured",
                hint="set [signing] pkcs12, key + cert, or pkcs11_module in the lab profile",
            )
        return cls.from_source(source, secret, policy=policy, now=now)

    @classmethod
    def from_source(
        cls,
        source: KeySource,
        secret: bytes | None,
        *,
        policy: SigningPolicy | None = None,
        now: datetime | None = None,
    ) -> Sealer:
        """Open the key `source` names (a ``[signing]`` key or a ``[[people]]`` entry's).

        `secret` is the PKCS#12 or key passphrase, or the token PIN (None: none, or the
        reader's PIN pad). Raises `ConfigError` or `SigningError`.
        """
        if source.pkcs11_module is not None:
            if secret is None:
                secret = source.uri_pin()  # a pkcs11: URI's pin-source or pin-value
            return cls.from_pkcs11(
                source.pkcs11_module,
                token_label=source.pkcs11_token,
                token_serial=source.pkcs11_token_serial,
                pin=secret.decode() if secret is not None else None,
                key_label=source.pkcs11_key_label or None,
                key_id=source.pkcs11_key_id,
                cert_label=source.pkcs11_cert_label or None,
                chain=source.chain,
                policy=policy,
                now=now,
            )
        if source.key is not None:
            if source.cert is None:
                raise ConfigError(
                    f"{source.where}: a signing key is set but no certificate",
                    hint="set cert to the key's certificate (PEM)",
                )
            return cls.from_pem(
                source.key, source.cert, source.chain, secret, policy=policy, now=now
            )
        if source.pkcs12 is None:
            raise ConfigError(
                f"{source.where}: no signing key configured",
                hint="set pkcs12, key + cert, or a token key (pkcs11_uri)",
            )
        return cls.from_pkcs12(source.pkcs12, secret, policy=policy, now=now)

    # -- revocation ------------------------------------------------------------------------

    def _validation_context(self, *, require: bool) -> ValidationContext:
        roots = list(self.policy.trust_roots) or [
            asn1_certificate(c) for c in self.chain if c.subject == c.issuer
        ]
        if not roots:
            raise SigningError(
                "cannot check the signing certificate's revocation status without trust roots",
                hint="set [signing] trust_roots in the lab profile",
            )
        return ValidationContext(
            trust_roots=roots,
            other_certs=[asn1_certificate(c) for c in self.chain],
            allow_fetching=True,
            revocation_mode="require" if require else "hard-fail",
            fetcher_backend=self.policy.fetcher_backend
            or RequestsFetcherBackend(per_request_timeout=self.policy.timeout),
        )

    def check_revocation(self, *, now: datetime | None = None) -> None:
        """Ask the CA (CRL or OCSP) whether the signing certificate is revoked.

        Raises `SigningError` when it is, or when the answer cannot be had.
        """
        context = self._validation_context(require=False)
        validator = CertificateValidator(
            asn1_certificate(self.certificate),
            intermediate_certs=[asn1_certificate(c) for c in self.chain],
            validation_context=context,
        )
        try:
            asyncio.run(validator.async_validate_usage(set()))  # type: ignore[no-untyped-call]
        except RevokedError as exc:
            raise SigningError(
                f"the signing certificate '{self.subject}' is revoked ({exc})",
                hint="a revoked certificate may not sign; ask the CA for a new one",
            ) from None
        except (ValidationError, PathBuildingError) as exc:
            raise SigningError(
                f"cannot confirm that the signing certificate '{self.subject}' is not revoked: "
                f"{exc}",
                hint="check the network, or set [signing] revocation_check = false",
            ) from None
        _logger.debug("signing certificate %s is not revoked", self.subject)

    # -- signing ---------------------------------------------------------------------------

    def _metadata(
        self,
        level: Level,
        field_name: str,
        *,
        reason: str | None,
        location: str | None,
        certify: bool = False,
    ) -> PdfSignatureMetadata:
        return PdfSignatureMetadata(
            field_name=field_name,
            subfilter=SigSeedSubFilter.PADES,
            md_algorithm=self.policy.digest.value,
            reason=reason,
            location=location,
            certify=certify,
            # NOTE: level 2 lets the head of the lab sign the reserved field later (ISO 32000
            # 12.8.2.2); annotations and other changes still break the certification.
            docmdp_permissions=MDPPerm.FILL_FORMS,
            embed_validation_info=level.long_term,
            use_pades_lta=level is Level.B_LTA,
            validation_context=self._validation_context(require=True) if level.long_term else None,
            signer_key_usage={"digital_signature"},
        )

    def _check_long_term(self, level: Level) -> None:
        if level.long_term and not _declares_revocation_info(self.certificate):
            raise SigningError(
                f"PAdES {level.value} needs revocation data, but the signing certificate "
                f"'{self.subject}' names no CRL or OCSP responder",
                hint="use B-T, or a certificate from a CA that publishes revocation data",
            )

    def _timestamper(self, level: Level) -> TsaFailover | None:
        if not level.timestamped:
            return None
        urls = self.policy.tsa_urls
        if not urls:
            raise ConfigError(
                f"PAdES {level.value} needs a time-stamping authority",
                hint="set [signing] tsa_url in the lab profile",
            )
        tsa = self._tsa
        if tsa is None or (tsa.urls, tsa.timeout, tsa.budget) != (
            urls,
            self.policy.timeout,
            self.policy.tsa_budget,
        ):
            # Kept for the Sealer's life (one run): the TSA that answered last is asked
            # first, and time lost to TSAs that do not answer counts against one budget.
            tsa = self._tsa = TsaFailover(
                urls, timeout=self.policy.timeout, budget=self.policy.tsa_budget
            )
        return tsa

    def _stamp(self, box: Box | None, role: str, when: datetime) -> StaticStampStyle | None:
        painter = self.policy.painter
        if painter is None or box is None:
            return None
        organisation = self.policy.organisation
        if not organisation:
            orgs = self.certificate.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
            organisation = str(orgs[0].value) if orgs else ""
        # Painted at the widget's own size, and placed with no margin: pyHanko's default
        # 5 pt margin shrinks the painting (and its 6 pt text) to fit.
        x1, y1, x2, y2 = box.rect
        pdf = painter.paint(
            x2 - x1,
            y2 - y1,
            signer=self.signer_name,
            role=role,
            organisation=organisation,
            when=when,
        )
        return StaticStampStyle(
            background=PdfBytesPage(pdf),
            border_width=0,
            background_opacity=1.0,
            background_layout=SimpleBoxLayoutRule(
                x_align=AxisAlignment.ALIGN_MID,
                y_align=AxisAlignment.ALIGN_MID,
                margins=Margins.uniform(0),  # type: ignore[no-untyped-call]
            ),
        )

    def _run(
        self,
        signer: PdfSigner,
        writer: IncrementalPdfFileWriter,
        level: Level,
        *,
        existing_fields_only: bool = False,
    ) -> bytes:
        reserved = self._reserved + (TIMESTAMP_ROOM if level.timestamped else 0)
        out = BytesIO()
        try:
            signer.sign_pdf(
                writer,
                output=out,
                bytes_reserved=reserved,
                existing_fields_only=existing_fields_only,
            )
        except NoTimestamp as exc:
            raise _NoTimestampError(level, exc.statement) from None
        except TimestampRequestError as exc:
            raise SigningError(
                f"the time-stamping authority ({', '.join(self.policy.tsa_urls)}) failed: {exc}",
                hint="check [signing] tsa_url and the network",
            ) from None
        except (ValidationError, PathBuildingError) as exc:
            raise SigningError(
                f"cannot collect the revocation data PAdES {level.value} needs: {exc}",
                hint="B-LT needs the CA's CRL or OCSP responder to be reachable",
            ) from None
        except PyHankoSigningError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError | PathBuildingError):
                raise SigningError(
                    f"cannot collect the revocation data PAdES {level.value} needs: {cause}",
                    hint="B-LT needs the CA's CRL or OCSP responder to be reachable",
                ) from None
            raise SigningError(f"could not sign the document: {exc}") from exc
        except (PdfError, ValueError, KeyError) as exc:
            raise SigningError(f"could not sign the document: {exc}") from exc
        return out.getvalue()

    def sign(
        self,
        pdf: bytes,
        *,
        info: Mapping[str, str] | None = None,
        reason: str | None = None,
        location: str | None = None,
        slot: SignatureSlot | None = None,
        reserve: SignatureSlot | None = None,
        level: Level | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """Sign `pdf` at the policy's PAdES level (or `level`) and return the signed bytes.

        `info` adds entries to the document information dictionary (for example the QR URL), in
        the same revision as the signature, so they are covered by it. `slot` names the field
        and, with a painter in the policy, where the visible signature goes (above the printed
        name). `reserve` makes this a certification signature (DocMDP: form filling and
        signing allowed) and adds the empty field the second signer fills with `approve`.
        Raises `SigningError` (or `ConfigError` when the level needs a TSA and none is set).
        """
        level = level or self.policy.level
        self._check_long_term(level)
        self.downgraded = None
        slot = slot or SignatureSlot(SIGNATURE_FIELD, "")
        when = now or datetime.now(UTC)
        timestamper = self._timestamper(level)
        try:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
            if info:
                self._add_info(writer, info)
            box = locate_slot(pdf, slot) if self.policy.painter is not None else None
            if reserve is not None:
                spare = locate_slot(pdf, reserve)
                append_signature_field(
                    writer,
                    SigFieldSpec(
                        reserve.field,
                        on_page=spare.page if spare else 0,
                        box=spare.rect if spare else None,
                        readable_field_name=reserve.role,
                    ),
                )
            meta = self._metadata(
                level,
                slot.field,
                reason=reason,
                location=location,
                certify=reserve is not None,
            )
            field_spec = SigFieldSpec(
                slot.field,
                on_page=box.page if box else 0,
                box=box.rect if box else None,
                readable_field_name=slot.role or None,
            )
            signer = PdfSigner(
                meta,
                signer=self._signer,
                timestamper=timestamper,
                stamp_style=self._stamp(box, slot.role, when),
                new_field_spec=field_spec,
            )
        except (PdfError, ValueError, KeyError) as exc:
            raise SigningError(f"could not prepare the document for signing: {exc}") from exc
        try:
            return self._run(signer, writer, level)
        except _NoTimestampError as exc:
            # Issue 17: only B-T is downgraded. A B-LT or B-LTA signature is asked for so that
            # it can be checked after the signer's certificate expires; a B-B one cannot be,
            # so it is refused rather than issued as something else.
            if level is not Level.B_T or self.policy.tsa_unavailable is TsaUnavailable.REFUSE:
                raise
            statement = exc.statement
        signed = self.sign(
            pdf,
            info=info,
            reason=reason,
            location=location,
            slot=slot,
            reserve=reserve,
            level=Level.B_B,
            now=now,
        )
        self.downgraded = statement
        _logger.info("no time-stamping authority answered (%s); signed at B-B", statement)
        return signed

    def approve(
        self,
        pdf: bytes,
        *,
        field_name: str = APPROVAL_FIELD,
        reason: str | None = None,
        location: str | None = None,
        level: Level | None = None,
        now: datetime | None = None,
    ) -> bytes:
        """Add the second signature to the empty field `field_name` of a signed `pdf`.

        The first signature must be a certification signature that allows signing (what
        `sign` makes with ``reserve=``); the new signature is an incremental update, so the
        first stays valid. Raises `SigningError` when there is no such empty field.
        """
        level = level or self.policy.level
        self._check_long_term(level)
        when = now or datetime.now(UTC)
        timestamper = self._timestamper(level)
        try:
            writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
            sig_field, page, rect = _find_empty_field(writer, field_name)
        except (PdfError, ValueError, KeyError) as exc:
            raise SigningError(f"cannot read the document to approve it: {exc}") from exc
        if sig_field is None:
            raise SigningError(
                f"the document has no empty signature field '{field_name}' to approve",
                hint="only certificates issued with [signing] approval = true leave one; "
                "a field that is already signed cannot be signed again",
            )
        role = str(sig_field.get("/TU", ""))
        box = None
        if rect is not None and page is not None:
            x1, y1, x2, y2 = (float(v) for v in rect)
            if x2 - x1 > 1 and y2 - y1 > 1:
                box = Box(page, x1, y1, x2, y2)
        meta = self._metadata(level, field_name, reason=reason, location=location)
        signer = PdfSigner(
            meta,
            signer=self._signer,
            timestamper=timestamper,
            stamp_style=self._stamp(box, role, when),
        )
        return self._run(signer, writer, level, existing_fields_only=True)

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


class _NoTimestampError(SigningError):
    """No time-stamping authority answered a signature at `level`; `statement` names each
    authority asked and why it failed."""

    def __init__(self, level: Level, statement: str) -> None:
        self.statement = statement
        if level is Level.B_T:
            hint = (
                "check [signing] tsa_url and the network, or set [signing] tsa_unavailable = "
                '"downgrade" to sign at B-B and say so'
            )
        else:
            hint = (
                f"check [signing] tsa_url and the network; {level.value} is never downgraded "
                "(a B-B signature cannot be checked after the signer's certificate expires)"
            )
        super().__init__(
            f"no time-stamping authority answered ({statement}); PAdES {level.value} needs a "
            "timestamp, so nothing was signed",
            hint=hint,
        )


def _find_empty_field(
    writer: IncrementalPdfFileWriter, name: str
) -> tuple[generic.DictionaryObject | None, int | None, Any]:
    """The unsigned signature field `name`, its page index and widget rectangle."""
    form = writer.root.get("/AcroForm")
    if form is None:
        return None, None, None
    for ref in form.get_object().get("/Fields", []):
        fld = ref.get_object()
        if fld.get("/FT") != "/Sig" or str(fld.get("/T", "")) != name or "/V" in fld:
            continue
        rect = fld.get("/Rect")
        page_ref = fld.get("/P")
        page = None
        if page_ref is not None:
            page_obj = page_ref.get_object()
            for i in range(writer.root["/Pages"]["/Count"]):
                page_ref_i = writer.find_page_for_modification(i)[0]  # type: ignore[no-untyped-call]
                if page_ref_i.get_object() is page_obj:
                    page = i
                    break
        return fld, page, rect
    return None, None, None
