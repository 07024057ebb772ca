"""The ledger's say in a verdict: the entry a file is, its recomputed data, its signed events.

These checks read the ledger and the token, never the PDF, so they import neither pyHanko nor
the document checks (`certissuer.verify._pades`, `certissuer.verify._strict`). `Verifier`
runs them after the document checks; the command line runs them in its own process while a
bounded child reads the document (`certissuer.verify._bounded`).

>>> report, entry = judge_pdf(report, ledger, keys, sha=sha, claims=claims)  # doctest: +SKIP
>>> wanted = dcc_wanted(report, entry)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import date, datetime

from certissuer._vn import VIETNAM_TZ, local_date, local_time
from certissuer.ledger import (
    CertificateEntry,
    EventKind,
    Ledger,
    ReportRecord,
    Status,
    report_record_problem,
    utc,
)
from certissuer.token import TokenClaims, TokenPublicKey
from certissuer.verify.verdict import Report, Verdict

__all__ = [
    "NOT_CONSULTED_OFFLINE",
    "apply_dcc",
    "dcc_wanted",
    "fail",
    "judge",
    "judge_pdf",
    "judge_report",
    "lookup_pdf",
    "not_consulted",
]

NOT_CONSULTED_OFFLINE = "the ledger was not consulted (offline)"
"""Why a genuine document's ledger was not consulted, when it was not asked to be."""

_STATUS_VERDICT = {
    Status.VALID: Verdict.VALID,
    Status.REVOKED: Verdict.REVOKED,
    Status.SUPERSEDED: Verdict.SUPERSEDED,
    Status.EXPIRED: Verdict.EXPIRED,
    Status.NO_LONGER_VALID: Verdict.NO_LONGER_VALID,
    Status.AWAITING_APPROVAL: Verdict.AWAITING_APPROVAL,
    Status.PENDING: Verdict.NOT_IN_LEDGER,
}


def fail(report: Report, verdict: Verdict, reason: str) -> Report:
    """Set `verdict` on `report`, add `reason` to its reasons, and return it."""
    report.verdict = verdict
    report.reasons.append(reason)
    return report


def _fill_from(report: Report, entry: CertificateEntry) -> None:
    """Copy to `report` the columns of `entry` that its signed issued event covers."""
    report.number, report.kind = entry.number, entry.kind
    report.issue_date, report.valid_until = entry.issue_date, entry.valid_until
    report.instrument, report.serial = entry.instrument_name, entry.instrument_serial
    report.customer = entry.customer_name


def lookup_pdf(
    ledger: Ledger | None,
    sha: str,
    claims: TokenClaims | None,
    report: Report,
    *,
    issued_sha256: str | None = None,
) -> CertificateEntry | None:
    """The ledger entry of the file whose SHA-256 is `sha`, or None.

    `issued_sha256` is the SHA-256 of the revision the first signature covers, when only
    signatures, validation data or document timestamps were added after it. A file whose
    token names a registered number with other bytes makes `report` ALTERED.
    """
    if ledger is None:
        return None
    entry = ledger.by_pdf_sha256(sha)
    if entry is None and issued_sha256 is not None:
        # An approval signature, validation data or a document timestamp was added after
        # issue: the ledger knows the file as it was issued, the revision the first
        # signature covers (later revisions were checked before).
        entry = ledger.by_pdf_sha256(issued_sha256)
    if entry is None and claims is not None:
        registered = ledger.get(claims.number)
        if registered is not None and not registered.is_pending:
            # Same number, other bytes: even a change the signature does not cover (padding
            # in /Contents) makes this file other than the one the lab issued.
            report.verdict = Verdict.ALTERED
            report.reasons.append(
                f"the file differs from the registered copy of {claims.number} "
                f"(SHA-256 {registered.pdf_sha256})"
            )
    return entry


def judge(
    report: Report,
    ledger: Ledger | None,
    keys: Sequence[TokenPublicKey],
    entry: CertificateEntry | None,
    claims: TokenClaims | None,
    today: date | None,
    *,
    at: datetime | None = None,
    unsigned_fields: Sequence[str] = (),
) -> Report:
    """The verdict of `report` from the ledger `entry` and its events signed with `keys`.

    `today` decides expiry (default: the date of `at` in Vietnam, else today there). With
    `at` the ledger is judged as it stood then: events recorded later do not count, and a
    certificate issued later was not issued yet. The stored data are recomputed and must
    hash to the digest the entry records, the token carries and the lab signed.
    `unsigned_fields` are the PDF's empty signature fields: the file of a certificate issued
    for approval that still has one is not the approved copy, so it awaits approval.
    """
    if at is not None:
        at = utc(at)  # a bare time is UTC
        if today is None:
            today = at.astimezone(VIETNAM_TZ).date()
    if ledger is None:
        return fail(report, Verdict.NOT_IN_LEDGER, "no ledger was given to check")
    if report.verdict is Verdict.ALTERED:
        return report
    if entry is None:
        return fail(report, Verdict.NOT_IN_LEDGER, "not found in the ledger")
    if claims is not None and claims.number != entry.number:
        return fail(
            report,
            Verdict.ALTERED,
            f"QR token names {claims.number} but the ledger entry is {entry.number}",
        )
    if entry.is_pending:
        report.number = entry.number
        return fail(report, Verdict.NOT_IN_LEDGER, f"{entry.number} is reserved but not yet issued")
    # Recompute, don't trust: the stored data must hash to what the token carries and to
    # the digest the lab signed (in the issued event, checked below); no column is taken
    # on its word.
    actual = hashlib.sha256(entry.data_json.encode()).hexdigest()
    if not hmac.compare_digest(actual, entry.data_digest.lower()):
        return fail(
            report,
            Verdict.ALTERED,
            f"the ledger's data of {entry.number} do not hash to the digest it records: "
            "the stored data were changed after issue",
        )
    if claims is not None and not claims.matches_digest(actual):
        return fail(
            report,
            Verdict.ALTERED,
            f"QR token's data digest does not match the ledger's data of {entry.number} "
            "(recomputed): the stored data were changed, or the token is not this entry's",
        )
    if claims is not None and claims.issued != entry.issue_date:
        return fail(
            report,
            Verdict.ALTERED,
            f"QR token's issue date {claims.issued} differs from the ledger's {entry.issue_date}",
        )
    standing = ledger.standing(
        entry, keys=keys, today=today or datetime.now(VIETNAM_TZ).date(), at=at
    )
    for ev, why in standing.rejected:
        report.reasons.append(
            f"ignored: the {ev.kind} event of {entry.number} recorded "
            f"{local_date(ev.at)} (event row {ev.id}): {why}"
        )
    if standing.issued is None:
        issued_events = [ev for ev, _ in standing.rejected if ev.kind == EventKind.ISSUED]
        unsigned = bool(issued_events) and all(not ev.signature for ev in issued_events)
        return fail(
            report,
            Verdict.NOT_IN_LEDGER if unsigned else Verdict.ALTERED,
            f"the lab's signed ledger does not vouch for {entry.number}: {standing.issued_problem}",
        )
    report.data_digest = actual
    _fill_from(report, entry)  # these columns are covered by the signed issued event
    if at is not None and utc(standing.issued.at) > at:
        return fail(
            report,
            Verdict.NOT_IN_LEDGER,
            f"{entry.number} was issued {local_time(standing.issued.at):%Y-%m-%d %H:%M} "
            f"(UTC+7), after the time asked about ({local_time(at):%Y-%m-%d %H:%M} UTC+7): "
            "it did not exist yet",
        )
    if standing.issued.backfilled_at is not None:
        report.reasons.append(
            f"its issued event was written before ledger events were signed and signed "
            f"at the ledger upgrade of {local_date(standing.issued.backfilled_at)}"
        )
    status, event = standing.status, standing.event
    report.verdict = _STATUS_VERDICT[status]
    if status is Status.PENDING:
        report.reasons.append(f"{entry.number} is reserved but not yet issued")
    elif status is Status.REVOKED and event is not None:
        report.revocation_reason = event.reason
        report.ended_at = utc(event.at)
        # Dates people read are Vietnam's: revoked at 20:00 UTC is revoked the next day there.
        report.reasons.append(f"revoked on {local_date(event.at)}: {event.reason}")
    elif status is Status.SUPERSEDED and event is not None:
        report.superseded_by = event.related_number
        report.reasons.append(f"superseded by {event.related_number}: {event.reason}")
    elif status is Status.NO_LONGER_VALID and event is not None:
        report.revocation_reason = event.reason
        report.superseded_by = event.related_number
        report.ended_at = utc(event.at)
        report.reasons.append(f"no longer valid since {local_date(event.at)}: {event.reason}")
    elif status is Status.EXPIRED:
        when = "now" if at is None else f"on {today}"
        report.reasons.append(f"valid until {entry.valid_until}, expired {when}")
    elif status is Status.AWAITING_APPROVAL:
        report.reasons.append(
            f"{entry.number} waits for the head's approval signature: not in force until approved"
        )
    else:
        report.reasons.append(f"in the ledger as {entry.number}, issued {entry.issue_date}")
    if report.verdict is Verdict.VALID and unsigned_fields and standing.approval_requested:
        # The ledger records the approval, but this copy of the file predates it: it lacks
        # the signature that puts the certificate in force.
        report.verdict = Verdict.AWAITING_APPROVAL
        names = ", ".join(repr(n) for n in unsigned_fields)
        report.reasons.append(
            f"awaiting approval: signature field {names} is empty, so this file is not in "
            "force (the lab's approved copy carries the head's signature)"
        )
    return report


def judge_pdf(
    report: Report,
    ledger: Ledger | None,
    keys: Sequence[TokenPublicKey],
    *,
    sha: str,
    claims: TokenClaims | None,
    issued_sha256: str | None = None,
    today: date | None = None,
    at: datetime | None = None,
    unsigned_fields: Sequence[str] = (),
    stray_bytes: bool = False,
    no_ledger: str = NOT_CONSULTED_OFFLINE,
    report_checkpoint: str | None = None,
) -> tuple[Report, CertificateEntry | None]:
    """`lookup_pdf`, then `judge`: the report of a genuine document and its ledger entry.

    Without a ledger (offline) a genuine document is `Verdict.FILE_LEDGER_NOT_CONSULTED`,
    never NOT IN THE LEDGER: its signatures and token were checked, its status was not;
    `no_ledger` says why there is no ledger. With
    `stray_bytes` (bytes after the signed revision that are no revision) it is ALTERED: the
    ledger, which would not know those bytes, is not needed to say so. A report of the lab
    (its signed revision names the checkpoint it counts, `report_checkpoint`, or the ledger
    records its SHA-256) is judged as a report (`judge_report`), never as a certificate.
    """
    if ledger is not None and report.verdict is Verdict.VALID:
        # Certificates carry a QR token, reports do not: a certificate costs no extra query.
        asked = report_checkpoint is not None or claims is None
        record = ledger.report_by_sha256(sha) if asked else None
        if record is not None or report_checkpoint is not None:
            judged = judge_report(
                report, ledger, keys, record,
                report_checkpoint=report_checkpoint, issued_sha256=issued_sha256,
                stray_bytes=stray_bytes, at=at,
            )  # fmt: skip
            return judged, None
    if ledger is None and report.verdict is Verdict.VALID and report_checkpoint is not None:
        report.checkpoint = report_checkpoint
        report.reasons.append(
            f"the file is a report of the lab counting checkpoint {report_checkpoint}"
        )
    if ledger is None and report.verdict is Verdict.VALID:
        if stray_bytes:
            reason = (
                "bytes follow the signed revision that are no revision: the file is not the "
                "one the lab signed"
            )
            return fail(report, Verdict.ALTERED, reason), None
        return not_consulted(report, claims, unsigned_fields, why=no_ledger), None
    entry = lookup_pdf(ledger, sha, claims, report, issued_sha256=issued_sha256)
    judged = judge(
        report, ledger, keys, entry, claims, today, at=at, unsigned_fields=unsigned_fields
    )
    return judged, entry


def judge_report(
    report: Report,
    ledger: Ledger,
    keys: Sequence[TokenPublicKey],
    record: ReportRecord | None,
    *,
    report_checkpoint: str | None,
    issued_sha256: str | None = None,
    stray_bytes: bool = False,
    at: datetime | None = None,
) -> Report:
    """The verdict on a report of the lab (issue 19) whose signatures were judged genuine.

    `record` is the ledger's record of the file's SHA-256 (None: not recorded);
    `report_checkpoint` is the checkpoint its signed revision names (``"<size> <root>"``).
    GENUINE REPORT only when the record is signed with the lab's ledger key (`keys`), names
    the same checkpoint as the file, and that checkpoint is one the lab signed and the log
    still reproduces. The recorded file is the whole file: a revision added after signing, even
    one a certificate may carry, makes it another file (ALTERED). With `at`, a report recorded
    after that moment did not exist yet (NOT IN THE LEDGER).
    """
    report.checkpoint = report_checkpoint
    if record is None:
        earlier = ledger.report_by_sha256(issued_sha256) if issued_sha256 else None
        if earlier is not None or stray_bytes:
            return fail(
                report,
                Verdict.ALTERED,
                "the file was changed after the report was signed (a revision or bytes were "
                "added): it is not the report the ledger records"
                + (f" (SHA-256 {earlier.pdf_sha256})" if earlier is not None else ""),
            )
        return fail(
            report,
            Verdict.NOT_IN_LEDGER,
            f"a report signed for the lab (checkpoint {report_checkpoint}), but the ledger "
            "records no report with this file's SHA-256",
        )
    problem = report_record_problem(record, keys)
    if problem is not None:
        return fail(
            report,
            Verdict.NOT_IN_LEDGER if not record.signature else Verdict.ALTERED,
            f"the ledger's record of this report (row {record.id}) does not count: {problem}",
        )
    recorded = f"{record.tree_size} {record.root_hash}"
    if report_checkpoint != recorded:
        return fail(
            report,
            Verdict.ALTERED,
            f"the file names checkpoint {report_checkpoint or '(none)'}, the ledger's record "
            f"of it {recorded}",
        )
    if (why := ledger.checkpoint_signed(record.tree_size, record.root_hash, keys)) is not None:
        return fail(
            report,
            Verdict.ALTERED,
            f"the checkpoint the report counts is not one the lab signed: {why}",
        )
    issued = utc(record.issued_at)
    if at is not None and issued > utc(at):
        return fail(
            report,
            Verdict.NOT_IN_LEDGER,
            f"the report was recorded {local_time(issued):%Y-%m-%d %H:%M} (UTC+7), after the "
            f"time asked about ({local_time(utc(at)):%Y-%m-%d %H:%M} UTC+7)",
        )
    report.verdict = Verdict.GENUINE_REPORT
    report.report_kind, report.report_period = record.kind, record.period
    report.report_title, report.report_issued_at = record.title, issued
    report.report_signer = record.signer
    report.reasons.append(
        f"a report of the lab, not a certificate: the {record.kind} report "
        f"'{record.title}' for {record.period}, signed by {record.signer}, recorded in the "
        f"ledger {local_time(issued):%Y-%m-%d %H:%M:%S} (UTC+7), counting checkpoint "
        f"{recorded}, which the lab signed"
    )
    return report


def not_consulted(
    report: Report,
    claims: TokenClaims | None,
    unsigned_fields: Sequence[str] = (),
    *,
    why: str = NOT_CONSULTED_OFFLINE,
) -> Report:
    """`report` of a genuine document whose ledger was not consulted: what the file proves.

    Its signatures were judged (their reasons are in `report`); its QR token's claims, if
    any, give the number, the issue date, the data digest's first 128 bits and the key.
    `why` says why the ledger was not consulted (offline, or it could not be reached).
    """
    report.verdict = Verdict.FILE_LEDGER_NOT_CONSULTED
    if claims is not None:
        report.number, report.issue_date = claims.number, claims.issued
        report.token_digest, report.token_kid = claims.digest_prefix, claims.kid
    if unsigned_fields:
        report.reasons.append("with a signature field empty, this copy may await approval")
    report.reasons.append(
        f"{why}: whether this file is the registered copy "
        "and whether the certificate is revoked, superseded or expired was not checked"
    )
    return report


def dcc_wanted(report: Report, entry: CertificateEntry | None) -> tuple[str, str] | None:
    """The number and data digest an embedded DCC must carry, or None if it is not checked.

    The DCC is checked (issue 9) only for a genuine file found in the ledger whose stored
    data were recomputed (`Report.data_digest`).
    """
    if (
        entry is None
        or report.data_digest is None
        or report.verdict
        in (
            Verdict.ALTERED,
            Verdict.UNKNOWN_SIGNER,
            Verdict.NOT_IN_LEDGER,
            Verdict.TIME_NOT_PROVEN,
        )
    ):
        return None
    return entry.number, report.data_digest


def apply_dcc(report: Report, finding: tuple[bool, str] | None) -> Report:
    """Add the DCC check's `finding` to `report`: one that does not match makes it ALTERED."""
    if finding is not None:
        matches, reason = finding
        report.reasons.append(reason)
        if not matches:
            report.verdict = Verdict.ALTERED
    return report
