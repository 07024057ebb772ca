"""PAdES validation for `certissuer.verify`: every signature and document timestamp, judged.

pyHanko checks each signature's integrity, cryptography, certificate path and what changed
after it (its difference analysis); this module applies the policy a court or an inspector
relies on, one named defence per known attack:

* `_check_signed`: the file carries a signature (a stripped one leaves none).
* `_check_integrity`: the signed bytes are unchanged and the signature verifies.
* `_check_algorithms`: RSA ≥ 2048 bits or ECDSA ≥ 256, SHA-256 or stronger (Circular
  15/2025/TT-BKHCN).
* `_check_timestamp`: a signature or document timestamp must come from a trusted TSA.
* `_check_trust`: the signer chains to the lab's trust roots, is not revoked, and was valid
  when it signed; an expired signer passes only with a trusted timestamp from its validity.
* `_check_coverage`: each signature's byte range covers its whole revision (no wrapping).
* `_check_revisions`, `_check_document_info`: every revision after issue is a signature, a
  document timestamp or a DSS update, and the document information is as issued.
* `_check_modifications`: after a signature, only DSS and document timestamps may follow
  (pyHanko's LTA_UPDATES), or the filling of a signature field that a later, valid signature
  signs, as the certification's DocMDP allows. An added annotation or form field (the
  "shadow" attacks that hide and replace the result table), a change to the content or the
  document information, or an unsigned revision is refused.
* `_check_rebuild` (before any signature is judged) and `_check_changes` (after): the strict
  reading of `certissuer.verify._strict`. A rebuilding reader sees the same objects as the strict
  one, and every object redefined after a signature, and every annotation, is compared
  directly with what that signature signed, whatever pyHanko's visibility heuristic says.

Timestamps are validated newest first: the newest document timestamp at the validation
time, each older one (and each signature timestamp) at the time of the next trusted
document timestamp, which proves it existed then. That is how a B-LTA file stays valid after
the signer's and even the first TSA's certificates expire.

>>> result = check_signatures(reader, policy, at=datetime.now(UTC))  # doctest: +SKIP
>>> result.failure, [s.level for s in result.signatures]  # doctest: +SKIP
(None, ['B-LTA'])
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.sign.diff_analysis import (
    DiffResult,
    ModificationLevel,
    StandardDiffPolicy,
    SuspiciousModification,
)
from pyhanko.sign.diff_analysis.form_rules_api import FormUpdatingRule
from pyhanko.sign.diff_analysis.rules.file_structure_rules import (
    CatalogModificationRule,
    ObjectStreamRule,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.rules.form_field_rules import (
    DSSCompareRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
)
from pyhanko.sign.diff_analysis.rules.metadata_rules import DocInfoRule, MetadataUpdateRule
from pyhanko.sign.diff_analysis.rules_api import Context, ReferenceUpdate, WhitelistRule
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import (
    DocumentTimestampStatus,
    PdfSignatureStatus,
    SignatureCoverageLevel,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext

from certissuer.verify import _strict
from certissuer.verify._info import SIGNATURE_LABELS, SignatureInfo, describe

__all__ = [
    "SIGNATURE_LABELS",
    "Failure",
    "SignatureCheck",
    "SignatureInfo",
    "ValidationPolicy",
    "check_signatures",
    "describe",
]

_logger = logging.getLogger(__name__)

_STRONG_DIGESTS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})
_KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)


class _XmpRefreshRule(WhitelistRule):
    """The XMP metadata stream rewritten in place with only its modification date (and
    producer) changed, as pyHanko does in every revision of a PDF 2.0 file: an ECDSA signature
    makes one (ISO/TS 32002), so its DSS and document timestamp revisions refresh the XMP.
    Any other change to the packet stays unexplained (`_strict.XMP_REFRESHED`)."""

    def apply(self, old: HistoricalResolver, new: HistoricalResolver) -> Iterable[ReferenceUpdate]:
        old_ref = _strict.metadata_ref(old.root)
        if old_ref is None or old_ref != _strict.metadata_ref(new.root):
            return
        reference = generic.Reference(*old_ref)
        try:
            before = _strict.norm_decoded(old.get_object(reference))
            after = _strict.norm_decoded(new.get_object(reference))
        except (PdfError, ValueError, KeyError, TypeError):
            return
        if _strict.xmp_refreshed_only(before, after):
            yield ReferenceUpdate(
                reference,
                context_checked=Context.from_absolute(old, RawPdfPath("/Root", "/Metadata")),
            )


# NOTE: pyHanko's rule constructors are not annotated, hence the ignores.
_LTA_ONLY = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(),  # type: ignore[no-untyped-call]
        # pyHanko refreshes /ModDate when it adds a DSS; `_check_document_info` allows no more
        DocInfoRule().as_qualified(ModificationLevel.LTA_UPDATES),
        _XmpRefreshRule().as_qualified(ModificationLevel.LTA_UPDATES),
        XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
    ],
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(),  # type: ignore[no-untyped-call]
            SigFieldModificationRule(),
        ]
    ),
)
"""What may follow the last signature: DSS updates and document timestamps, nothing else (no
XMP change beyond the refreshed modification date, no form field other than a signature
field)."""
_INFO_REFRESHED = frozenset({"/ModDate", "/Producer"})
"""Document-information entries that pyHanko rewrites when it appends a revision."""

_BEFORE_APPROVAL = StandardDiffPolicy(
    global_rules=[
        *_LTA_ONLY.global_rules,
        # pyHanko refreshes XMP metadata when it adds the second signature
        MetadataUpdateRule().as_qualified(  # type: ignore[no-untyped-call]
            ModificationLevel.LTA_UPDATES
        ),
    ],
    form_rule=_LTA_ONLY.form_rule,
)
"""What may follow a signature that a later signature covers: the same, plus the metadata
refresh of that later signature (which covers it)."""

Kind = Literal["altered", "unknown_signer", "time_not_proven"]

_MODIFICATION_WORDS = {
    ModificationLevel.NONE: "none",
    ModificationLevel.LTA_UPDATES: "validation data and document timestamps only",
    ModificationLevel.FORM_FILLING: "signature fields filled",
    ModificationLevel.ANNOTATIONS: "annotations added",
    ModificationLevel.OTHER: "content changed",
}
_COVERAGE_WORDS = {
    SignatureCoverageLevel.ENTIRE_FILE: "the entire file",
    SignatureCoverageLevel.ENTIRE_REVISION: "its revision; later revisions follow",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "part of its revision only",
    SignatureCoverageLevel.UNCLEAR: "an unclear part of the file",
}


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What signers and timestamps are checked against."""

    trust_roots: tuple[asn1_x509.Certificate, ...]
    """Roots a signer must chain to (the lab's CA, or the licensed CA that issued its token)."""
    tsa_roots: tuple[asn1_x509.Certificate, ...] = ()
    """Roots a time-stamping authority must chain to; empty: the trust roots."""
    revocation: str = "soft-fail"
    """pyHanko's revocation mode: soft-fail (check what is known), hard-fail, require."""
    fetch: bool = False
    """Fetch CRLs and OCSP responses over the network."""
    crls: tuple[asn1_crl.CertificateList, ...] = ()
    """CRLs known locally (downloaded by the lab), checked offline."""
    fetcher_backend: Any = field(default=None, compare=False)
    """pyHanko fetcher backend when `fetch` is set; None: its default."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the document is not genuine: the verdict kind and a one-line reason."""

    kind: Kind
    reason: str


@dataclass(slots=True)
class SignatureCheck:
    """The outcome of `check_signatures`."""

    signatures: list[SignatureInfo] = field(default_factory=list)
    failure: Failure | None = None
    issued_revision: int | None = None
    """The revision the first signature covers: the document as it was issued."""
    issued_sha256: str | None = None
    """SHA-256 of the bytes up to the end of that revision (the file as first signed)."""
    later_revisions: int = 0
    """Revisions added after the issued one (approval, validation data, timestamps)."""
    unsigned_fields: list[str] = field(default_factory=list)
    """Signature fields still empty (an approval not given yet)."""


class _Refused(Exception):
    def __init__(self, kind: Kind, reason: str) -> None:
        super().__init__(reason)
        self.failure = Failure(kind, reason)


@dataclass(slots=True)
class _Material:
    """Validation data from the DSS and the lab's local CRLs."""

    certs: list[asn1_x509.Certificate]
    dss_crls: list[asn1_crl.CertificateList]
    ocsps: list[asn1_ocsp.OCSPResponse]
    dss_has_revinfo: bool


def _read_material(reader: PdfFileReader, policy: ValidationPolicy) -> _Material:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _Material([], [], [], False)
    certs = list(dss.load_certs())
    crls = [asn1_crl.CertificateList.load(ref.get_object().data) for ref in dss.crls]
    ocsps = [asn1_ocsp.OCSPResponse.load(ref.get_object().data) for ref in dss.ocsps]
    return _Material(certs, crls, ocsps, bool(crls or ocsps))


class _Contexts:
    """Builds pyHanko validation contexts for one document."""

    def __init__(self, policy: ValidationPolicy, material: _Material) -> None:
        self.policy = policy
        self.material = material

    def make(
        self,
        roots: Sequence[asn1_x509.Certificate],
        moment: datetime,
        *,
        past: bool = False,
        mode: str | None = None,
        dss_only: bool = False,
        dss_revinfo: bool = True,
    ) -> ValidationContext:
        """A context at `moment`. `past`: revocation data issued later counts (past
        validation); `dss_only`: only the file's own validation data (to tell B-LT);
        `dss_revinfo=False`: leave the file's CRLs and OCSP responses out (see `_soft`)."""
        m = self.material
        fetch = self.policy.fetch and not dss_only
        crls = (m.dss_crls if dss_revinfo else []) + ([] if dss_only else list(self.policy.crls))
        kwargs: dict[str, Any] = {}
        if fetch:
            # Imported here: `requests` and urllib3 cost a verification that fetches nothing
            # (the default) a tenth of its start-up.
            from pyhanko_certvalidator.fetchers.requests_fetchers import RequestsFetcherBackend

            # NOTE: the `requests` backend, not pyHanko's default aiohttp one: one HTTP stack
            # for signing and verifying (and the one the tests' in-process PKI answers).
            kwargs["fetcher_backend"] = self.policy.fetcher_backend or RequestsFetcherBackend(
                per_request_timeout=10
            )
        return ValidationContext(
            trust_roots=list(roots),
            other_certs=m.certs,
            crls=crls,
            ocsps=m.ocsps if dss_revinfo else [],
            moment=moment,
            allow_fetching=fetch,
            revocation_mode=mode or self.policy.revocation,
            # Revocation data fetched when the file was signed or later says the certificate
            # was not revoked at the signing time (ETSI EN 319 102-1, 5.6.2.4).
            retroactive_revinfo=past,
            **kwargs,
        )

    @property
    def tsa_roots(self) -> tuple[asn1_x509.Certificate, ...]:
        return self.policy.tsa_roots or self.policy.trust_roots


def _soft(contexts: _Contexts, status: Any) -> bool:
    """Whether to validate again without the file's own revocation data.

    In soft-fail mode, missing revocation data does not fail a certificate, but pyHanko fails
    one whose only data is stale (a CRL that a B-LT file carries is past its next update a
    week later). Stale is no better than missing: the retry treats it so, while a revocation
    that the data shows, and the lab's own CRLs, still count.
    """
    return (
        contexts.policy.revocation == "soft-fail"
        and contexts.material.dss_has_revinfo
        and status is not None
        and status.intact
        and status.valid
        and not status.trusted
        and not status.revoked
    )


def _name(cert: asn1_x509.Certificate) -> str:
    return str(cert.subject.human_friendly)


def _path_names(path: Any) -> list[str]:
    """The certification path, signer first: each certificate's common name."""
    names = []
    for cert in reversed(list(path.iter_certs(True))):
        cn = cert.subject.native.get("common_name")
        names.append(str(cn) if cn else _name(cert))
    return names


def _declares_revocation(cert: asn1_x509.Certificate) -> bool:
    return bool(cert.crl_distribution_points or cert.ocsp_urls)


# -- the defences --------------------------------------------------------------------------


def _check_signed(embedded: Sequence[EmbeddedPdfSignature]) -> None:
    if not embedded:
        raise _Refused("altered", "the PDF carries no signature")


def _check_integrity(label: str, status: PdfSignatureStatus | DocumentTimestampStatus) -> None:
    if not status.intact:
        raise _Refused("altered", f"{label}: the signed content was changed")
    if not status.valid:
        raise _Refused("altered", f"{label}: the signature is invalid")


def _check_algorithms(label: str, status: PdfSignatureStatus) -> None:
    if status.md_algorithm not in _STRONG_DIGESTS:
        raise _Refused("altered", f"{label}: digest {status.md_algorithm} is weaker than SHA-256")
    key = status.signing_cert.public_key
    bits = key.bit_size
    if key.algorithm == "rsa" and bits < 2048:
        raise _Refused("altered", f"{label}: RSA-{bits} key; at least 2048 bits required")
    if key.algorithm == "ec" and bits < 256:
        raise _Refused("altered", f"{label}: EC-{bits} key; at least 256 bits required")


def _check_timestamp(label: str, what: str, ts: TimestampSignatureStatus | None) -> None:
    if ts is None:
        return
    if not (ts.intact and ts.valid):
        raise _Refused("altered", f"{label}: the {what} is damaged")
    if not ts.trusted:
        raise _Refused(
            "unknown_signer",
            f"{label}: the {what} comes from '{_name(ts.signing_cert)}', which is not a "
            "trusted time-stamping authority",
        )


def _check_trust(
    label: str,
    status: PdfSignatureStatus,
    at: datetime,
    trusted_time: datetime | None,
    past: PdfSignatureStatus | None,
) -> PdfSignatureStatus:
    """The status that establishes trust (`status` now, or `past` at the trusted time).

    Without a trusted time, `past` is the signature judged at the time its signer claims: a
    signer that chains to the roots then, but whose certificate has expired since, leaves only
    the signing time unproven ("time_not_proven", judged after every other check)."""
    if status.trusted and not status.revoked:
        return status
    cert = status.signing_cert
    who = _name(cert)
    details = status.revocation_details
    if details is not None:
        when = details.revocation_date
        if trusted_time is None or trusted_time >= when:
            reason = details.revocation_reason.human_friendly
            raise _Refused(
                "unknown_signer",
                f"{label}: the signer's certificate ('{who}') was revoked on "
                f"{when:%Y-%m-%d %H:%M} UTC ({reason})",
            )
    expired = cert["tbs_certificate"]["validity"]["not_after"].native < at
    if details is None and not expired:
        raise _Refused(
            "unknown_signer", f"{label}: signer '{who}' does not chain to the lab's trust roots"
        )
    if trusted_time is None:
        until = cert["tbs_certificate"]["validity"]["not_after"].native
        if past is None or not past.trusted or past.revoked:
            raise _Refused(
                "unknown_signer",
                f"{label}: the signer's certificate ('{who}') expired on {until:%Y-%m-%d}, "
                "and the signer was not trusted at the time the signature claims either",
            )
        raise _Refused(
            "time_not_proven",
            f"{label}: the signer's certificate ('{who}') expired and no trusted timestamp "
            f"shows that the signature was made while it was valid (until {until:%Y-%m-%d}): "
            "the signing time cannot be proven (a PAdES B-B signature carries only the "
            "signer's own clock)",
        )
    if past is not None and past.trusted and not past.revoked:
        return past
    raise _Refused(
        "unknown_signer",
        f"{label}: signer '{who}' was not trusted at the timestamp's time "
        f"({trusted_time:%Y-%m-%d %H:%M} UTC)",
    )


def _check_coverage(label: str, coverage: SignatureCoverageLevel | None) -> None:
    if coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        raise _Refused(
            "altered",
            f"{label}: its byte range does not cover the whole revision it signs "
            "(bytes outside the signature could have been swapped in)",
        )


def _annotation_kinds(
    reader: PdfFileReader, revision: int, signed: frozenset[tuple[int, int]] = frozenset()
) -> dict[tuple[int, int], str]:
    history = reader.get_historical_resolver(revision)
    kinds: dict[tuple[int, int], str] = {}
    pages = history.root["/Pages"]
    stack = [pages]
    while stack:
        node = stack.pop()
        if isinstance(node, generic.IndirectObject):
            node = history.get_object(node.reference)
        if "/Kids" in node:
            stack.extend(node.raw_get("/Kids"))
            continue
        raw = node.raw_get("/Annots") if "/Annots" in node else None
        annots = (
            history.get_object(raw.reference) if isinstance(raw, generic.IndirectObject) else raw
        )
        for ref in annots or ():
            if isinstance(ref, generic.IndirectObject):
                annot = history.get_object(ref.reference)
                if _strict.signed_widget(annot, signed):
                    continue  # a later signature's or document timestamp's own field
                kinds[(ref.idnum, ref.generation)] = str(annot.get("/Subtype", "?"))
    return kinds


def _added_annotations(
    reader: PdfFileReader, revision: int, signed: frozenset[tuple[int, int]] = frozenset()
) -> list[str]:
    """Subtypes of the annotations that the current file has and revision `revision` had not,
    leaving out the widgets of the fields whose value is one of the `signed` signatures."""
    try:
        before = _annotation_kinds(reader, revision)
        after = _annotation_kinds(reader, reader.xrefs.total_revisions - 1, signed)
    except (PdfError, KeyError, TypeError, ValueError):
        return []
    return sorted({kind for key, kind in after.items() if key not in before})


def _check_modifications(
    label: str,
    status: PdfSignatureStatus | DocumentTimestampStatus,
    later_signed_fields: set[str],
    reader: PdfFileReader | None = None,
    signed_revision: int = 0,
    later_values: frozenset[tuple[int, int]] = frozenset(),
) -> None:
    if status.coverage is SignatureCoverageLevel.ENTIRE_FILE:
        return
    diff = status.diff_result
    if not isinstance(diff, DiffResult):
        added = (
            _added_annotations(reader, signed_revision, later_values) if reader is not None else []
        )
        if added:
            raise _Refused(
                "altered",
                f"{label}: annotation(s) {', '.join(added)} were added after it was signed "
                "(they can hide or replace signed content)",
            )
        detail = f": {diff}" if isinstance(diff, SuspiciousModification) else ""
        raise _Refused("altered", f"{label}: the document was changed after it was signed{detail}")
    level = diff.modification_level
    if level <= ModificationLevel.LTA_UPDATES:
        return
    stray = sorted(diff.changed_form_fields - later_signed_fields)
    if level is ModificationLevel.FORM_FILLING and not stray and status.docmdp_ok is not False:
        return
    added = _added_annotations(reader, signed_revision, later_values) if reader is not None else []
    if level is ModificationLevel.ANNOTATIONS or (added and level is ModificationLevel.OTHER):
        what = (
            f"annotation(s) {', '.join(added) or '?'} were added after it was signed "
            "(they can hide or replace signed content)"
        )
    elif level is ModificationLevel.FORM_FILLING:
        what = (
            f"form field(s) {', '.join(stray) or '?'} were added or filled after it was signed "
            "(a field can cover or replace what was signed)"
        )
    else:
        what = "the document was changed after it was signed (an unsigned revision follows)"
    raise _Refused("altered", f"{label}: {what}")


def _check_revisions(reader: PdfFileReader, embedded: Sequence[EmbeddedPdfSignature]) -> None:
    """Every revision after the first signature's is a signature, a timestamp or a DSS update."""
    first = min(s.signed_revision for s in embedded)
    signed = {s.signed_revision for s in embedded}
    for revision in range(first + 1, reader.xrefs.total_revisions):
        if revision in signed:
            continue
        root = reader.get_historical_resolver(revision).root
        dss = root.raw_get("/DSS") if "/DSS" in root else None
        written = reader.xrefs.explicit_refs_in_revision(revision)
        if isinstance(dss, generic.IndirectObject) and dss.reference in written:
            continue
        raise _Refused(
            "altered",
            f"revision {revision + 1} of the file is neither a signature, a document "
            "timestamp nor validation data: an unsigned revision was appended after signing",
        )


def _check_document_info(reader: PdfFileReader, issued_revision: int) -> None:
    """Only /ModDate and /Producer may differ from the document information as issued."""
    before = _info_dict(_historical_info(reader, issued_revision))
    after = _info_dict(_historical_info(reader, reader.xrefs.total_revisions - 1))
    changed = sorted(
        key
        for key in (set(before) | set(after)) - _INFO_REFRESHED
        if before.get(key) != after.get(key)
    )
    if changed:
        raise _Refused(
            "altered",
            f"the document information ({', '.join(changed)}) was changed after signing",
        )


def _historical_info(reader: PdfFileReader, revision: int) -> generic.DictionaryObject | None:
    """The document information dictionary as of `revision` (not as later revisions left it)."""
    history = reader.get_historical_resolver(revision)
    trailer = history.trailer_view
    raw = trailer.raw_get("/Info") if "/Info" in trailer else None
    info = history.get_object(raw.reference) if isinstance(raw, generic.IndirectObject) else raw
    return info if isinstance(info, generic.DictionaryObject) else None


def _info_dict(info: generic.DictionaryObject | None) -> dict[str, str]:
    return {} if info is None else {str(k): str(v) for k, v in info.items()}


def _check_rebuild(
    reader: PdfFileReader, data: bytes, embedded: Sequence[EmbeddedPdfSignature]
) -> None:
    """Bytes after the first signed revision: a rebuilding reader must see the same objects.

    Up to the end of that revision the bytes are the signer's (its byte range covers them and
    `_strict` checked that no object hides in the /Contents gap); only later bytes can have
    been written by someone else, so only then is the file rebuilt by scanning (about 2 ms).
    """
    first = min(s.signed_revision for s in embedded)
    if first < reader.xrefs.total_revisions - 1:
        try:
            _strict.check_rebuild_agrees(data, reader)
        except _strict.Ambiguous as exc:
            raise _Refused("altered", str(exc)) from None


def _check_changes(reader: PdfFileReader, embedded: Sequence[EmbeddedPdfSignature]) -> None:
    """Every object redefined after each signature, and every annotation, compared directly
    with what that signature signed; only later signatures (all judged valid by now) and
    validation data may explain a difference."""
    for i, sig in enumerate(embedded):
        later = [
            _strict.LaterSignature(
                str(other.field_name),
                _value_ref(other),
                other.signed_revision,
            )
            for other in embedded[i + 1 :]
        ]
        try:
            _strict.check_changes(reader, sig.signed_revision, later)
        except _strict.Ambiguous as exc:
            raise _Refused("altered", f"{_label(i + 1, sig)}: {exc}") from None


def _value_ref(sig: EmbeddedPdfSignature) -> tuple[int, int]:
    ref = sig.sig_field.raw_get("/V")
    return (ref.idnum, ref.generation)


# -- the procedure ---------------------------------------------------------------------------


def _label(index: int, sig: EmbeddedPdfSignature) -> str:
    kind = "document timestamp" if sig.sig_object_type == "/DocTimeStamp" else "signature"
    return f"{kind} {index} ({sig.field_name})"


def _revision_end(sig: EmbeddedPdfSignature) -> int:
    byte_range = sig.byte_range
    return int(byte_range[-2]) + int(byte_range[-1])


def _revision_start(reader: PdfFileReader, data: bytes, sig: EmbeddedPdfSignature) -> int:
    """Where the revision holding `sig` begins: after the ``%%EOF`` line ending the one before
    (-1 when there is none). A wrong guess only fails to find the file in the ledger."""
    xref = reader.xrefs.get_startxref_for_revision(sig.signed_revision)
    eof = data.rfind(b"%%EOF", 0, xref)
    if eof < 0:
        return -1
    end = eof + 5
    while end < len(data) and data[end] in b"\r\n":
        end += 1
    return end


def check_signatures(
    reader: PdfFileReader, data: bytes, policy: ValidationPolicy, *, at: datetime
) -> SignatureCheck:
    """Validate every signature and document timestamp in `reader` (the bytes `data`) at `at`.

    Returns what was learned about each, the first failure (if any), and the hash of the
    revision the first signature covers (the file as issued), so that a file with later
    revisions (approval, DSS, document timestamps) can be found in the ledger.
    """
    result = SignatureCheck()
    embedded = list(reader.embedded_signatures)
    try:
        _check_signed(embedded)
        if embedded:
            _check_rebuild(reader, data, embedded)
            _run(reader, data, embedded, policy, at, result)
    except _Refused as refused:
        result.failure = refused.failure
    result.unsigned_fields = [
        str(name) for name, _, _ in enumerate_sig_fields(reader, filled_status=False)
    ]
    return result


def _run(
    reader: PdfFileReader,
    data: bytes,
    embedded: list[EmbeddedPdfSignature],
    policy: ValidationPolicy,
    at: datetime,
    result: SignatureCheck,
) -> None:
    material = _read_material(reader, policy)
    contexts = _Contexts(policy, material)
    signatures = [s for s in embedded if s.sig_object_type == "/Sig"]
    first = signatures[0] if signatures else embedded[0]
    result.issued_revision = first.signed_revision
    end = _revision_end(first)
    if len(signatures) > 1:
        # Issued at B-LT or B-LTA, the file as issued (and registered) ends after its own
        # validation data and document timestamp: just before the approval's revision.
        end = max(end, _revision_start(reader, data, signatures[1]))
    if end < len(data):
        result.issued_sha256 = hashlib.sha256(data[:end]).hexdigest()
    result.later_revisions = reader.xrefs.total_revisions - 1 - first.signed_revision
    infos: dict[int, SignatureInfo] = {}
    statuses: dict[int, PdfSignatureStatus | DocumentTimestampStatus] = {}
    last_sig_index = (
        max(i for i, s in enumerate(embedded) if s.sig_object_type == "/Sig")
        if (signatures)
        else -1
    )

    def diff_policy(i: int) -> StandardDiffPolicy:
        return _BEFORE_APPROVAL if i < last_sig_index else _LTA_ONLY

    # 1. Document timestamps, newest first: each proves that what it covers existed then.
    poe = at
    doc_ts_times: dict[int, datetime] = {}
    for i in reversed(range(len(embedded))):
        sig = embedded[i]
        if sig.sig_object_type != "/DocTimeStamp":
            continue
        label = _label(i + 1, sig)
        try:
            ts_status = validate_pdf_timestamp(
                sig, contexts.make(contexts.tsa_roots, poe), diff_policy=diff_policy(i)
            )
            if _soft(contexts, ts_status):
                ts_status = validate_pdf_timestamp(
                    sig,
                    contexts.make(contexts.tsa_roots, poe, dss_revinfo=False),
                    diff_policy=diff_policy(i),
                )
        except (SignatureValidationError, PdfError, ValueError) as exc:
            raise _Refused("altered", f"{label} cannot be validated: {exc}") from None
        info = SignatureInfo(i + 1, str(sig.field_name), "document timestamp")
        info.signer = info.timestamp_authority = _name(ts_status.signing_cert)
        info.signed_at, info.time_trusted = ts_status.timestamp, ts_status.trusted
        infos[i], statuses[i] = info, ts_status
        _check_integrity(label, ts_status)
        _check_timestamp(label, "document timestamp", ts_status)
        info.trusted = True
        if ts_status.validation_path is not None:
            info.trust_path = _path_names(ts_status.validation_path)
        poe = ts_status.timestamp
        doc_ts_times[i] = ts_status.timestamp

    # 2. Signatures, in order. A signing time that cannot be proven is said only when
    #    nothing else is wrong with the file (it does not accuse anyone; a change does).
    unproven: list[_Refused] = []
    for i, sig in enumerate(embedded):
        if sig.sig_object_type != "/Sig":
            continue
        infos[i], statuses[i] = _check_one(
            i, sig, contexts, at, doc_ts_times, diff_policy(i), unproven
        )

    # 3. The revisions after issue, and what changed after each signature, judged once all
    #    are known (a later signature may sign the
    #    field that an earlier certification left for it).
    result.signatures = [infos[k] for k in sorted(infos)]
    for i, sig in enumerate(embedded):
        label = _label(i + 1, sig)
        status = statuses[i]
        info = infos[i]
        info.coverage = _COVERAGE_WORDS.get(status.coverage, "unknown")  # type: ignore[arg-type]
        level = status.modification_level
        info.modification = _MODIFICATION_WORDS.get(level, "unknown") if level else "none"
        later = {
            str(embedded[k].field_name)
            for k in range(i + 1, len(embedded))
            if embedded[k].sig_object_type == "/Sig"
        }
        try:
            _check_coverage(label, status.coverage)
            later_values = frozenset(_value_ref(other) for other in embedded[i + 1 :])
            _check_modifications(label, status, later, reader, sig.signed_revision, later_values)
        except _Refused as refused:
            info.problem, info.valid = refused.failure.reason, False
            raise
        info.valid = info.problem is None
    # Then the file as a whole (the specific reasons above come first).
    _check_document_info(reader, first.signed_revision)
    _check_revisions(reader, embedded)
    _check_changes(reader, embedded)
    if unproven:
        raise unproven[0]


def _check_one(
    i: int,
    sig: EmbeddedPdfSignature,
    contexts: _Contexts,
    at: datetime,
    doc_ts_times: dict[int, datetime],
    diff_policy: StandardDiffPolicy,
    unproven: list[_Refused],
) -> tuple[SignatureInfo, PdfSignatureStatus]:
    label = _label(i + 1, sig)
    later_ts = sorted(t for k, t in doc_ts_times.items() if k > i)
    poe = later_ts[0] if later_ts else at
    roots = contexts.policy.trust_roots
    try:
        status = validate_pdf_signature(
            sig,
            contexts.make(roots, at),
            contexts.make(contexts.tsa_roots, poe, past=bool(later_ts)),
            diff_policy=diff_policy,
            key_usage_settings=_KEY_USAGE,
        )
        if _soft(contexts, status) or _soft(contexts, status.timestamp_validity):
            status = validate_pdf_signature(
                sig,
                contexts.make(roots, at, dss_revinfo=False),
                contexts.make(contexts.tsa_roots, poe, past=bool(later_ts), dss_revinfo=False),
                diff_policy=diff_policy,
                key_usage_settings=_KEY_USAGE,
            )
    except (SignatureValidationError, PdfError) as exc:
        raise _Refused("altered", f"{label} cannot be validated: {exc}") from None
    except (MemoryError, RecursionError):
        # Running out of a bound says nothing about the file: "could not check", never ALTERED.
        raise
    except Exception as exc:
        # A damaged CMS blob can break the validator in many ways; none is "valid".
        _logger.debug("validation of %s raised", label, exc_info=True)
        raise _Refused("altered", f"{label} is damaged ({type(exc).__name__})") from None
    docmdp = sig.docmdp_level
    info = SignatureInfo(
        i + 1,
        str(sig.field_name),
        f"certification ({docmdp.name.lower()})" if docmdp is not None else "signature",
        signer=_name(status.signing_cert),
        algorithm=f"{status.md_algorithm} / {status.pkcs7_signature_mechanism}",
        cert_sha256=hashlib.sha256(status.signing_cert.dump()).hexdigest(),
    )
    _check_integrity(label, status)
    _check_algorithms(label, status)
    ts = status.timestamp_validity
    _check_timestamp(label, "signature timestamp", ts)
    trusted_time: datetime | None = None
    if ts is not None:
        trusted_time = ts.timestamp
        info.timestamp_authority = _name(ts.signing_cert)
    elif later_ts:
        trusted_time = later_ts[0]  # a document timestamp right after also proves the time
    info.signed_at = trusted_time or status.signer_reported_dt
    info.time_trusted = trusted_time is not None

    past = None
    # Without a trusted time, the time the signer claims: is the signer trusted then?
    then = trusted_time or status.signer_reported_dt
    if not (status.trusted and not status.revoked) and then is not None:
        past = validate_pdf_signature(
            sig,
            contexts.make(roots, then, past=True),
            contexts.make(contexts.tsa_roots, poe, past=bool(later_ts)),
            skip_diff=True,
            key_usage_settings=_KEY_USAGE,
        )
    try:
        chosen = _check_trust(label, status, at, trusted_time, past)
    except _Refused as refused:
        info.problem = refused.failure.reason
        if refused.failure.kind != "time_not_proven":
            raise
        unproven.append(refused)
        return info, status
    info.trusted = True
    if chosen.validation_path is not None:
        info.trust_path = _path_names(chosen.validation_path)
    moment = trusted_time if chosen is past and trusted_time else at

    # Level reached, and what is known about revocation.
    long_term = False
    cert = status.signing_cert
    if _declares_revocation(cert) and contexts.material.dss_has_revinfo:
        dss_check = validate_pdf_signature(
            sig,
            contexts.make(roots, trusted_time or at, past=True, mode="require", dss_only=True),
            skip_diff=True,
            key_usage_settings=_KEY_USAGE,
        )
        long_term = dss_check.trusted and not dss_check.revoked
    if not _declares_revocation(cert):
        info.revocation = "not applicable: the CA publishes no CRL or OCSP responder"
    elif long_term:
        info.revocation = "not revoked (CRL/OCSP in the file's validation data)"
    elif contexts.policy.crls or contexts.policy.fetch:
        checked = validate_pdf_signature(
            sig,
            contexts.make(roots, moment, past=chosen is past, mode="require"),
            skip_diff=True,
            key_usage_settings=_KEY_USAGE,
        )
        info.revocation = (
            "not revoked (checked against the CA's CRL/OCSP)"
            if checked.trusted and not checked.revoked
            else "unknown: no current CRL or OCSP response"
        )
    else:
        info.revocation = "not checked: no revocation data in the file or given locally"
    if not info.time_trusted:
        info.level = "B-B"
    elif not long_term:
        info.level = "B-T"
    else:
        info.level = "B-LTA" if later_ts else "B-LT"
    return info, status


def issued_info_entry(reader: PdfFileReader, revision: int, key: str) -> str | None:
    """Document-information entry `key` as of `revision` (what the first signature covers)."""
    try:
        info = _historical_info(reader, revision)
        value = None if info is None else info.get("/" + key)
    except (PdfError, KeyError, ValueError):
        return None
    return None if value is None else str(value)
