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
import hmac
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from certissuer._vn import VIETNAM_TZ
from certissuer.config import Settings
from certissuer.errors import ConfigError, TokenError, VerificationFailed
from certissuer.ledger import CertificateEntry, EventKind, Ledger, Status
from certissuer.token import (
    INFO_QR_KEY,
    TokenClaims,
    TokenPublicKey,
    load_public_keys,
    read_token,
    token_from_url,
)
from certissuer.verify import _strict
from certissuer.verify._pades import (
    SignatureCheck,
    ValidationPolicy,
    check_signatures,
    issued_info_entry,
)
from certissuer.verify.verdict import Report, Verdict

__all__ = ["Verifier", "load_crls", "load_trust_roots"]

_logger = logging.getLogger(__name__)


_STATUS_VERDICT = {
    Status.VALID: Verdict.VALID,
    Status.REVOKED: Verdict.REVOKED,
    Status.SUPERSEDED: Verdict.SUPERSEDED,
    Status.EXPIRED: Verdict.EXPIRED,
    Status.PENDING: Verdict.NOT_IN_LEDGER,
}


def _fill_from(report: Report, entry: CertificateEntry) -> None:
    """Copy to `report` the columns of `entry` that its signed issued event covers."""
    report.number, report.kind = entry.number, entry.kind
    report.issue_date, report.valid_until = entry.issue_date, entry.valid_until
    report.instrument, report.serial = entry.instrument_name, entry.instrument_serial
    report.customer = entry.customer_name


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


def _check_dcc(report: Report, reader: PdfFileReader, entry: CertificateEntry | None) -> Report:
    """The DCC XML embedded in the PDF, if any, must carry the ledger's data (issue 9).

    Runs after the other checks, only for a genuine file found in the ledger whose stored data
    were recomputed (`Report.data_digest`): a DCC that does not match that digest (another
    certificate's data, or unreadable) makes the verdict ALTERED.
    """
    from certissuer.dcc import check_embedded

    if (
        entry is None
        or report.data_digest is None
        or report.verdict in (Verdict.ALTERED, Verdict.UNKNOWN_SIGNER, Verdict.NOT_IN_LEDGER)
    ):
        return report
    finding = check_embedded(reader, number=entry.number, digest=report.data_digest)
    if finding is not None:
        matches, reason = finding
        report.reasons.append(reason)
        if not matches:
            report.verdict = Verdict.ALTERED
    return report


def _info_entry(reader: PdfFileReader, key: str) -> str | None:
    info = reader.trailer_view.get("/Info")
    if info is None:
        return None
    info = info.get_object()
    value = info.get("/" + key) if isinstance(info, generic.DictionaryObject) else None
    return None if value is None else str(value)


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
    ) -> None:
        """`tsa_roots` are the roots time-stamping authorities chain to (default: the trust
        roots); `revocation` is soft-fail, hard-fail or require; `fetch` allows fetching CRLs
        and OCSP responses; `crls` are CRLs the lab downloaded, checked offline."""
        if revocation not in ("soft-fail", "hard-fail", "require"):
            raise ConfigError(
                f"revocation policy '{revocation}': expected soft-fail, hard-fail or require"
            )
        self.trust_roots = list(trust_roots)
        self.token_keys = list(token_keys)
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
        """Build from the lab profile. `token_public` overrides the token key file."""
        if not settings.signing_trust_roots:
            raise ConfigError(
                "no trust roots configured", hint="set [signing] trust_roots in the lab profile"
            )
        key_path = token_public or settings.token_key
        if key_path is None:
            raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
        roots = load_trust_roots(settings.signing_trust_roots)
        return cls(
            trust_roots=roots,
            token_keys=load_public_keys(key_path),
            ledger=ledger,
            tsa_roots=[*load_trust_roots(settings.signing_tsa_roots), *roots],
            revocation=settings.verify_revocation,
            fetch=settings.verify_fetch,
            crls=load_crls(settings.verify_crls),
        )

    @staticmethod
    def _today(today: date | None) -> date:
        return today or datetime.now(VIETNAM_TZ).date()

    def verify_pdf(
        self, data: bytes, *, today: date | None = None, at: datetime | None = None
    ) -> Report:
        """Check the signed PDF `data`.

        The document is read strictly first (`certissuer.verify._strict`): a file that a validator
        and a viewer could read as two documents is ALTERED before any signature is judged.
        Raises `VerificationFailed` (exit code 8) if it is not a PDF at all or its structure
        cannot be read (no cross-reference data, objects nested too deeply).

        `today` decides the ledger status (expiry); `at` is the moment the signatures are
        validated at (default: now), to check how a file will fare after its signer expires.
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
            return self._fail(report, Verdict.ALTERED, str(exc))
        try:
            check = check_signatures(reader, data, self.policy, at=at or datetime.now(UTC))
        except RecursionError:
            raise VerificationFailed(
                "the PDF is unreadable: its objects are nested too deeply"
            ) from None
        except (PdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # The structure reads, but an object in it does not: the signed file was changed.
            return self._fail(report, Verdict.ALTERED, f"the PDF is damaged: {exc}")
        if (failed := self._judge_signatures(report, check)) is not None:
            return failed
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
                return self._fail(report, Verdict.ALTERED, f"QR token: {exc}")
            report.number = claims.number
            report.reasons.append(f"QR token: signed by the lab key {claims.kid}")

        # Only later *revisions* (checked above) may follow the issued file; bytes after the
        # last %%EOF are no revision, and any other byte makes the file not the issued one.
        later_ok = check.later_revisions > 0 and data.rstrip().endswith(b"%%EOF")
        entry = self._lookup_pdf(
            sha, claims, report, issued_sha256=check.issued_sha256 if later_ok else None
        )
        return _check_dcc(self._judge(report, entry, claims, today), reader, entry)

    def verify_url(self, url: str, *, today: date | None = None) -> Report:
        """Check a QR URL (or bare token): offline signature check, then the ledger if any.

        Without a ledger the best verdict is `NOT_IN_LEDGER` with the reason "token genuine".
        """
        report = Report(Verdict.VALID)
        try:
            claims = read_token(token_from_url(url), self.token_keys)
        except TokenError as exc:
            return self._fail(report, Verdict.ALTERED, f"QR token: {exc}")
        report.number, report.issue_date = claims.number, claims.issued
        report.reasons.append(f"QR token: genuine, signed by the lab key {claims.kid}")
        if self.ledger is None:
            return self._fail(
                report, Verdict.NOT_IN_LEDGER, "no ledger to check the status against (offline)"
            )
        entry = self.ledger.get(claims.number)
        return self._judge(report, entry, claims, today)

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
            when = f"{info.signed_at:%Y-%m-%d %H:%M:%S %Z}" if info.signed_at else "unknown time"
            source = "trusted timestamp" if info.time_trusted else "signer's clock"
            level = f" PAdES {info.level}," if info.level else ""
            report.reasons.append(
                f"{label}: intact, valid,{level} by '{info.signer}' at {when} ({source})"
            )
        if check.failure is not None:
            unknown = check.failure.kind == "unknown_signer"
            verdict = Verdict.UNKNOWN_SIGNER if unknown else Verdict.ALTERED
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

    def _lookup_pdf(
        self,
        sha: str,
        claims: TokenClaims | None,
        report: Report,
        *,
        issued_sha256: str | None = None,
    ) -> CertificateEntry | None:
        if self.ledger is None:
            return None
        entry = self.ledger.by_pdf_sha256(sha)
        if entry is None and issued_sha256 is not None:
            # An approval signature, validation data or a document timestamp was added after
            # issue: the ledger knows the file as it was issued, the revision the first
            # signature covers (later revisions were checked above).
            entry = self.ledger.by_pdf_sha256(issued_sha256)
        if entry is None and claims is not None:
            registered = self.ledger.get(claims.number)
            if registered is not None and not registered.is_pending:
                # Same number, other bytes: even a change the signature does not cover (padding
                # in /Contents) makes this file other than the one the lab issued.
                report.verdict = Verdict.ALTERED
                report.reasons.append(
                    f"the file differs from the registered copy of {claims.number} "
                    f"(SHA-256 {registered.pdf_sha256})"
                )
        return entry

    def _judge(
        self,
        report: Report,
        entry: CertificateEntry | None,
        claims: TokenClaims | None,
        today: date | None,
    ) -> Report:
        if self.ledger is None:
            return self._fail(report, Verdict.NOT_IN_LEDGER, "no ledger was given to check")
        if report.verdict is Verdict.ALTERED:
            return report
        if entry is None:
            return self._fail(report, Verdict.NOT_IN_LEDGER, "not found in the ledger")
        if claims is not None and claims.number != entry.number:
            return self._fail(
                report,
                Verdict.ALTERED,
                f"QR token names {claims.number} but the ledger entry is {entry.number}",
            )
        if entry.is_pending:
            report.number = entry.number
            return self._fail(
                report, Verdict.NOT_IN_LEDGER, f"{entry.number} is reserved but not yet issued"
            )
        # Recompute, don't trust: the stored data must hash to what the token carries and to
        # the digest the lab signed (in the issued event, checked below); no column is taken
        # on its word.
        actual = hashlib.sha256(entry.data_json.encode()).hexdigest()
        if not hmac.compare_digest(actual, entry.data_digest.lower()):
            return self._fail(
                report,
                Verdict.ALTERED,
                f"the ledger's data of {entry.number} do not hash to the digest it records: "
                "the stored data were changed after issue",
            )
        if claims is not None and not claims.matches_digest(actual):
            return self._fail(
                report,
                Verdict.ALTERED,
                f"QR token's data digest does not match the ledger's data of {entry.number} "
                "(recomputed): the stored data were changed, or the token is not this entry's",
            )
        if claims is not None and claims.issued != entry.issue_date:
            return self._fail(
                report,
                Verdict.ALTERED,
                f"QR token's issue date {claims.issued} differs from the ledger's "
                f"{entry.issue_date}",
            )
        standing = self.ledger.standing(entry, keys=self.token_keys, today=self._today(today))
        for ev, why in standing.rejected:
            report.reasons.append(
                f"ignored: the {ev.kind} event of {entry.number} recorded "
                f"{ev.at:%Y-%m-%d} (event row {ev.id}): {why}"
            )
        if standing.issued is None:
            issued_events = [ev for ev, _ in standing.rejected if ev.kind == EventKind.ISSUED]
            unsigned = bool(issued_events) and all(not ev.signature for ev in issued_events)
            return self._fail(
                report,
                Verdict.NOT_IN_LEDGER if unsigned else Verdict.ALTERED,
                f"the lab's signed ledger does not vouch for {entry.number}: "
                f"{standing.issued_problem}",
            )
        report.data_digest = actual
        _fill_from(report, entry)  # these columns are covered by the signed issued event
        if standing.issued.backfilled_at is not None:
            report.reasons.append(
                f"its issued event was written before ledger events were signed and signed "
                f"at the ledger upgrade of {standing.issued.backfilled_at:%Y-%m-%d}"
            )
        status, event = standing.status, standing.event
        report.verdict = _STATUS_VERDICT[status]
        if status is Status.PENDING:
            report.reasons.append(f"{entry.number} is reserved but not yet issued")
        elif status is Status.REVOKED and event is not None:
            report.revocation_reason = event.reason
            report.reasons.append(f"revoked on {event.at:%Y-%m-%d}: {event.reason}")
        elif status is Status.SUPERSEDED and event is not None:
            report.superseded_by = event.related_number
            report.reasons.append(f"superseded by {event.related_number}: {event.reason}")
        elif status is Status.EXPIRED:
            report.reasons.append(f"valid until {entry.valid_until}, now expired")
        else:
            report.reasons.append(f"in the ledger as {entry.number}, issued {entry.issue_date}")
        return report
