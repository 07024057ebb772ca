"""The key register's say: was each key genuine when it made the token or the signature?

A token or a signature whose cryptography checks can still be false: made by a lab key after
the lab retired it, or after someone else got hold of it. The lab's key register
(`certissuer.key_register`) records each key's window and when it was compromised; this
judges a report against it, last, so that it overrides every verdict of a genuine-looking
certificate (VALID, SUPERSEDED, ...). A compromised key gives `Verdict.KEY_COMPROMISED`; a
token or signature outside its key's window `Verdict.ALTERED`.

The time of a token is its issue date (a day in Vietnam); that of a signature its trusted
timestamp when it has one, else the ledger's ``issued_at`` of the certificate, else none (a
signer's own clock proves nothing for a stolen key).
"""

from __future__ import annotations

from datetime import datetime

from certissuer.key_register import KeyProblem, KeyRegister
from certissuer.token import TokenClaims
from certissuer.verify.verdict import Report, Verdict

__all__ = ["judge_keys"]

_ALREADY_FALSE = frozenset({Verdict.ALTERED, Verdict.UNKNOWN_SIGNER, Verdict.KEY_COMPROMISED})


def judge_keys(
    report: Report,
    register: KeyRegister,
    *,
    claims: TokenClaims | None,
    issued_at: datetime | None = None,
) -> Report:
    """`report`, changed when the register says a key behind it was not genuine then.

    `claims` is the checked QR token (None: none); `issued_at` the ledger's time of issue
    (None: the ledger was not consulted). The report's signatures carry their certificates'
    ids and times. A report already NOT GENUINE is left as it is.
    """
    if report.verdict in _ALREADY_FALSE or not register.keys:
        return report
    problems: list[KeyProblem] = []
    if claims is not None:
        found = register.judge_token(claims.kid, claims.issued)
        if found is not None:
            problems.append(found)
    for info in report.signatures:
        if info.kind == "document timestamp" or not info.cert_sha256:
            continue
        when = info.signed_at if info.time_trusted else issued_at
        what = f"signature {info.index} ({info.field_name})"
        found = register.judge_signature(info.cert_sha256, when, what=what)
        if found is not None:
            problems.append(found)
    if not problems:
        return report
    compromised = [p for p in problems if p.compromised]
    report.verdict = Verdict.KEY_COMPROMISED if compromised else Verdict.ALTERED
    report.reasons.extend(p.reason for p in (compromised or problems))
    return report
