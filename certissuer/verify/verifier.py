"""The checks behind one verdict: strict document reading, PDF signatures, ledger, QR token.

>>> ledger = Ledger.open(settings.ledger_url)  # doctest: +SKIP
>>> verifier = Verifier.from_settings(settings, ledger=ledger)  # doctest: +SKIP
>>> report = verifier.verify_pdf(Path("out/HC-2026-000001.pdf").read_bytes())  # doctest: +SKIP
>>> report.verdict  # doctest: +SKIP
<Verdict.VALID: 'valid'>

Order of checks, strongest evidence first: the PDF must carry a signature that is intact,
cryptographically valid and covers the entire file (anything appended after signing, even an
incremental update, is "altered"); the signer must chain to the lab's trust roots ("unknown
signer"); the signed file's SHA-256 must be in the ledger ("not in ledger"); the QR token must
verify and name the same certificate; the stored data must still hash to the token's digest, to
the digest the lab signed and to the embedded DCC's ("recompute, don't trust"); the entry must
be vouched for by an ``issued`` event signed with the lab's ledger key (the token key); then the
ledger's *signed* events decide the status (revoked, superseded, expired, valid). An event
whose signature fails is ignored and named in the reasons.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from certissuer._vn import local_time
from certissuer.config import Settings
from certissuer.errors import ConfigError, LedgerError, TokenError, VerificationFailed
from certissuer.key_register import KeyRegister, lab_token_keys
from certissuer.token import (
    INFO_CHECKPOINT_KEY,
    INFO_QR_KEY,
    TokenClaims,
    TokenPublicKey,
    read_token,
    token_from_url,
)
from certissuer.verify import _strict
from certissuer.verify._keys import judge_keys
from certissuer.verify._pades import (
    SignatureCheck,
    ValidationPolicy,
    check_signatures,
    issued_info_entry,
)
from certissuer.verify.verdict import Report, Verdict

if TYPE_CHECKING:
    from certissuer.ledger import Ledger

__all__ = ["Document", "Verifier", "load_crls", "load_trust_roots"]

_logger = logging.getLogger(__name__)


def load_crls(paths: Iterable[Path]) -> list[asn1_crl.CertificateList]:
    """Load CRL files (DER or PEM) that the lab downloaded from its CAs."""
    crls = []
    for path in paths:
        try:
            data = path.read_bytes()
            if pem.detect(data):
                _, _, data = pem.unarmor(data)
            crl = asn1_crl.CertificateList.load(data)
            crl.native  # parse now, so a damaged file fails here  # noqa: B018
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot load the CRL: {exc}") from None
        crls.append(crl)
    return crls


def load_trust_roots(paths: Iterable[Path]) -> list[asn1_x509.Certificate]:
    """Load CA certificates (PEM or DER) that signers must chain to."""
    roots = []
    for path in paths:
        try:
            roots.append(load_cert_from_pemder(str(path)))  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot load the trust root certificate: {exc}") from exc
    return roots


def _info_entry(reader: PdfFileReader, key: str) -> str | None:
    info = reader.trailer_view.get("/Info")
    if info is None:
        return None
    info = info.get_object()
    value = info.get("/" + key) if isinstance(info, generic.DictionaryObject) else None
    return None if value is None else str(value)


def _signed_info(reader: PdfFileReader, check: SignatureCheck, key: str) -> str | None:
    """Information entry `key` as the first signature signed it (later revisions cannot swap
    it), or as the file says when no signature covers a revision."""
    if check.issued_revision is not None:
        return issued_info_entry(reader, check.issued_revision, key)
    return _info_entry(reader, key)


@dataclass(slots=True)
class Document:
    """What a PDF says of itself, before the ledger is asked (`Verifier.read_document`)."""

    report: Report
    """The report so far: the signatures judged, the token read."""
    final: bool
    """True when the document alone decided the verdict (altered, unknown signer)."""
    sha256: str
    """SHA-256 (hex) of the whole file."""
    claims: TokenClaims | None = None
    """The QR token the first signature covers, verified; None when there is none."""
    issued_sha256: str | None = None
    """SHA-256 of the revision the first signature covers, when only signatures, validation
    data or document timestamps follow it (the file as the ledger knows it)."""
    reader: PdfFileReader | None = None
    """The strictly read document, for the embedded DCC's check."""
    unsigned_fields: tuple[str, ...] = ()
    """Signature fields left empty (the head's approval not given yet)."""
    stray_bytes: bool = False
    """True when bytes follow the revision the first signature covers that are no checked
    later revision (appended after the last %%EOF): the file is not the one the lab signed."""
    report_checkpoint: str | None = None
    """The checkpoint a signed report of the lab names in the revision the first signature
    covers (``INFO_CHECKPOINT_KEY``: ``"<tree size> <root hex>"``); None for a certificate."""


class Verifier:
    """Checks PDFs and QR URLs against one lab's trust roots, token keys and ledger."""

    def __init__(
        self,
        *,
        trust_roots: Sequence[asn1_x509.Certificate],
        token_keys: Sequence[TokenPublicKey],
        ledger: Ledger | None,
        tsa_roots: Sequence[asn1_x509.Certificate] = (),
        revocation: str = "soft-fail",
        fetch: bool = False,
        crls: Sequence[asn1_crl.CertificateList] = (),
        register: KeyRegister | None = None,
    ) -> None:
        """`tsa_roots` are the roots time-stamping authorities chain to (default: the trust
        roots); `revocation` is soft-fail, hard-fail or require; `fetch` allows fetching CRLs
        and OCSP responses; `crls` are CRLs the lab downloaded, checked offline; `register`
        is the lab's key register (each key's window, and whether it was compromised)."""
        if revocation not in ("soft-fail", "hard-fail", "require"):
            raise ConfigError(
                f"revocation policy '{revocation}': expected soft-fail, hard-fail or require"
            )
        self.trust_roots = list(trust_roots)
        self.token_keys = list(token_keys)
        self.register = register or KeyRegister.empty()
        self.ledger = ledger
        self.policy = ValidationPolicy(
            trust_roots=tuple(trust_roots),
            tsa_roots=tuple(tsa_roots) or tuple(trust_roots),
            revocation=revocation,
            fetch=fetch,
            crls=tuple(crls),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, ledger: Ledger | None, token_public: Path | None = None
    ) -> Verifier:
        """Build from the lab profile. `token_public` overrides the token key file; the key
        register beside that file adds its older token keys (`lab_token_keys`)."""
        if not settings.signing_trust_roots:
            raise ConfigError(
                "no trust roots configured", hint="set [signing] trust_roots in the lab profile"
            )
        roots = load_trust_roots(settings.signing_trust_roots)
        keys, register = lab_token_keys(settings, token_public)
        return cls(
            trust_roots=roots,
            token_keys=keys,
            register=register,
            ledger=ledger,
            tsa_roots=[*load_trust_roots(settings.signing_tsa_roots), *roots],
            revocation=settings.verify_revocation,
            fetch=settings.verify_fetch,
            crls=load_crls(settings.verify_crls),
        )

    def verify_pdf(
        self,
        data: bytes,
        *,
        today: date | None = None,
        at: datetime | None = None,
        no_ledger: str = "the ledger was not consulted (offline)",
    ) -> Report:
        """Check the signed PDF `data`.

        The document is read strictly first (`certissuer.verify._strict`): a file that a validator
        and a viewer could read as two documents is ALTERED before any signature is judged.
        Raises `VerificationFailed` (exit code 8) if it is not a PDF at all or its structure
        cannot be read (no cross-reference data, objects nested too deeply).

        `at` is the moment the certificate is judged at (default: now): the signatures are
        validated then (how a file fares after its signer expires), and the ledger's status
        is the one at that moment (expired after its valid-until date, revoked only after the
        revocation was recorded). `today` overrides the date that decides expiry. `no_ledger`
        says why there is no ledger, when there is none. The three steps, `read_document`, the
        ledger's say (`certissuer.verify._standing`) and `check_dcc`, are the ones the command
        line runs in two processes.
        """
        from certissuer.verify import _standing

        doc = self.read_document(data, at=at)
        if doc.final:
            return doc.report
        report, entry = _standing.judge_pdf(
            doc.report,
            self.ledger,
            self.token_keys,
            sha=doc.sha256,
            claims=doc.claims,
            issued_sha256=doc.issued_sha256,
            today=today,
            at=at,
            unsigned_fields=doc.unsigned_fields,
            stray_bytes=doc.stray_bytes,
            no_ledger=no_ledger,
            report_checkpoint=doc.report_checkpoint,
        )
        if (wanted := _standing.dcc_wanted(report, entry)) is not None:
            number, digest = wanted
            report = _standing.apply_dcc(report, self.check_dcc(doc, number=number, digest=digest))
        return self.judge_keys(report, doc.claims, None if entry is None else entry.issued_at)

    def judge_keys(
        self, report: Report, claims: TokenClaims | None, issued_at: datetime | None = None
    ) -> Report:
        """`report` as the key register judges it (`certissuer.verify._keys.judge_keys`):
        a token or signature by a key compromised, or out of its window, then is not genuine.
        `issued_at` is the ledger's time of issue (None: not consulted)."""
        if issued_at is not None and issued_at.tzinfo is None:
            issued_at = issued_at.replace(tzinfo=UTC)  # SQLite returns UTC times naive
        return judge_keys(report, self.register, claims=claims, issued_at=issued_at)

    def read_document(self, data: bytes, *, at: datetime | None = None) -> Document:
        """What the PDF `data` says of itself: strict reading, its signatures, its QR token.

        Asks no ledger. The `Document` is final when the file alone decides the verdict
        (altered, unknown signer); raises `VerificationFailed` as `verify_pdf` does.
        """
        if b"%PDF-" not in data[:1024]:
            raise VerificationFailed("the file is not a PDF (no %PDF- header)")
        sha = hashlib.sha256(data).hexdigest()
        report = Report(Verdict.VALID, pdf_sha256=sha)
        # One document, read strictly: a file that readers can take for two documents is
        # altered; one whose structure cannot be read at all is unreadable (exit code 8).
        try:
            reader = _strict.open_document(data)
        except _strict.Unreadable as exc:
            raise VerificationFailed(f"the PDF is unreadable: {exc}") from None
        except _strict.Ambiguous as exc:
            return Document(self._fail(report, Verdict.ALTERED, str(exc)), True, sha)
        try:
            check = check_signatures(reader, data, self.policy, at=at or datetime.now(UTC))
        except RecursionError:
            raise VerificationFailed(
                "the PDF is unreadable: its objects are nested too deeply"
            ) from None
        except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # The structure reads, but an object in it does not: the signed file was changed.
            damaged = self._fail(report, Verdict.ALTERED, f"the PDF is damaged: {exc}")
            return Document(damaged, True, sha)
        if (failed := self._judge_signatures(report, check)) is not None:
            return Document(failed, True, sha)
        # The QR URL as the first signature signed it: later revisions cannot swap it.
        if check.issued_revision is not None:
            qr_url = issued_info_entry(reader, check.issued_revision, INFO_QR_KEY)
        else:
            qr_url = _info_entry(reader, INFO_QR_KEY)

        claims: TokenClaims | None = None
        if qr_url is None:
            report.reasons.append("the PDF carries no QR token")
        else:
            try:
                claims = read_token(token_from_url(qr_url), self.token_keys)
            except TokenError as exc:
                forged = self._fail(report, Verdict.ALTERED, f"QR token: {exc}")
                return Document(forged, True, sha)
            report.number = claims.number
            report.reasons.append(f"QR token: signed by the lab key {claims.kid}")

        report_checkpoint = _signed_info(reader, check, INFO_CHECKPOINT_KEY)
        # Only later *revisions* (checked above) may follow the issued file; bytes after the
        # last %%EOF are no revision, and any other byte makes the file not the issued one.
        later_ok = check.later_revisions > 0 and data.rstrip().endswith(b"%%EOF")
        return Document(
            report,
            False,
            sha,
            claims=claims,
            issued_sha256=check.issued_sha256 if later_ok else None,
            reader=reader,
            unsigned_fields=tuple(check.unsigned_fields),
            stray_bytes=check.issued_sha256 is not None and not later_ok,
            report_checkpoint=report_checkpoint,
        )

    @staticmethod
    def check_dcc(doc: Document, *, number: str, digest: str) -> tuple[bool, str] | None:
        """Does the DCC embedded in `doc` carry certificate `number` with data `digest`?

        The finding of `certissuer.dcc.check_embedded` (issue 9): None when the PDF embeds no
        DCC, else whether it matches and why.
        """
        from certissuer.dcc import check_embedded

        assert doc.reader is not None, "a final document has no DCC to check"
        return check_embedded(doc.reader, number=number, digest=digest)

    def verify_url(
        self,
        url: str,
        *,
        today: date | None = None,
        at: datetime | None = None,
        no_ledger: str = "the ledger was not consulted (offline)",
    ) -> Report:
        """Check a QR URL (or bare token): offline signature check, then the ledger if any.

        A token whose signature does not verify is `ALTERED` (NOT GENUINE), with or without a
        ledger. Without a ledger, or when reading it raises `LedgerError` (it cannot be
        reached), a genuine token is `LEDGER_NOT_CONSULTED` (`offline_report`): never VALID,
        never shown as a forgery. `at` judges the ledger's status as it stood then (see
        `verify_pdf`). `no_ledger` says why there is no ledger (offline, or it could not be
        opened).
        """
        report = Report(Verdict.VALID)
        try:
            claims = read_token(token_from_url(url), self.token_keys)
        except TokenError as exc:
            return self._fail(report, Verdict.ALTERED, f"QR token: {exc}")
        if self.ledger is None:
            return self.judge_keys(self.offline_report(claims, no_ledger), claims)
        report.number, report.issue_date = claims.number, claims.issued
        report.reasons.append(f"QR token: genuine, signed by the lab key {claims.kid}")
        from certissuer.verify import _standing

        try:
            entry = self.ledger.get(claims.number)
            report = _standing.judge(
                report, self.ledger, self.token_keys, entry, claims, today, at=at
            )
        except LedgerError as exc:
            _logger.warning("ledger unreachable for %s: %s", claims.number, exc)
            report = self.offline_report(claims, f"the ledger could not be reached ({exc})")
        return self.judge_keys(report, claims)

    @staticmethod
    def offline_report(claims: TokenClaims, why: str) -> Report:
        """The verdict for the genuine token `claims` when the ledger was not consulted.

        `why` says why not (offline, or unreachable). The report holds what the token itself
        proves: the certificate number, its issue date, the first 128 bits of the data digest
        and the key that signed it.
        """
        return Report(
            Verdict.LEDGER_NOT_CONSULTED,
            reasons=[
                f"QR token: genuine, signed by the lab key {claims.kid}",
                f"{why}: whether the certificate is revoked, superseded or expired was not checked",
            ],
            number=claims.number,
            issue_date=claims.issued,
            token_digest=claims.digest_prefix,
            token_kid=claims.kid,
        )

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _fail(report: Report, verdict: Verdict, reason: str) -> Report:
        report.verdict = verdict
        report.reasons.append(reason)
        return report

    @staticmethod
    def _judge_signatures(report: Report, check: SignatureCheck) -> Report | None:
        """Fill `report` from the signature check; the failed report, or None if all passed."""
        report.signatures = check.signatures
        signed = [s for s in check.signatures if s.kind != "document timestamp"]
        if signed:
            report.signer, report.signed_at = signed[0].signer, signed[0].signed_at
        for info in check.signatures:
            label = f"{info.kind.split(' (')[0]} {info.index} ({info.field_name})"
            if info.problem is not None or not info.valid:
                continue
            when = (
                f"{local_time(info.signed_at):%Y-%m-%d %H:%M:%S} (UTC+7)"
                if info.signed_at
                else "unknown time"
            )
            source = "trusted timestamp" if info.time_trusted else "signer's clock"
            level = f" PAdES {info.level}," if info.level else ""
            report.reasons.append(
                f"{label}: intact, valid,{level} by '{info.signer}' at {when} ({source})"
            )
        if check.failure is not None:
            verdict = {
                "unknown_signer": Verdict.UNKNOWN_SIGNER,
                "time_not_proven": Verdict.TIME_NOT_PROVEN,
            }.get(check.failure.kind, Verdict.ALTERED)
            return Verifier._fail(report, verdict, check.failure.reason)
        for name in check.unsigned_fields:
            report.reasons.append(
                f"signature field '{name}' is not signed yet (approval pending / chưa phê duyệt)"
            )
        if check.later_revisions:
            report.reasons.append(
                f"{check.later_revisions} revision(s) added after issue: "
                "signatures, validation data or document timestamps only"
            )
        return None
