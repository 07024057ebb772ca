"""One exception hierarchy: every user-facing failure of certissuer is a `CertissuerError`.

``str(exc)`` is a complete sentence a user can act on; ``exc.hint`` says what to do next.

>>> from certissuer.errors import InputError
>>> str(InputError("results.csv", "expected a number, got '0,05'", row=14, field="uncertainty"))
"results.csv, row 14, field 'uncertainty': expected a number, got '0,05'"
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

__all__ = [
    "AmbiguousNumber",
    "CertissuerError",
    "ConfigError",
    "ForeignLedger",
    "InputError",
    "InputErrors",
    "IssueRefused",
    "LedgerError",
    "RegisterRefused",
    "SignerRefused",
    "SigningError",
    "TemplateError",
    "TokenError",
    "VerificationFailed",
]


class CertissuerError(Exception):
    """Base error. ``str(exc)`` is a complete sentence a user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(CertissuerError):
    """The lab profile or a setting cannot be used."""

    exit_code = 3


class InputError(CertissuerError):
    """One value of a results file cannot be used as it is."""

    exit_code = 2

    def __init__(
        self,
        path: str | PathLike[str],
        problem: str,
        *,
        row: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if field:
            where += f", field '{field}'"
        super().__init__(f"{where}: {problem}", hint=hint)
        self.path = str(path)
        self.row = row
        self.field = field
        self.problem = problem


class InputErrors(CertissuerError):
    """Several problems in one input, reported all at once (not only the first)."""

    exit_code = 2

    def __init__(self, errors: Sequence[InputError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(str(e) for e in self.errors)
        count = len(self.errors)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the input:\n{lines}")


class TemplateError(CertissuerError):
    """A certificate template is missing, broken, or tries something it may not."""

    exit_code = 4


class SigningError(CertissuerError):
    """The document could not be signed (key, passphrase, certificate)."""

    exit_code = 5


class TokenError(CertissuerError):
    """A QR token is malformed, truncated, or its signature does not verify."""

    exit_code = 6


class LedgerError(CertissuerError):
    """The ledger cannot be read or written, or refuses an entry."""

    exit_code = 7


class ForeignLedger(LedgerError):
    """The ledger reached belongs to another lab (one lab, one ledger): never "unreachable"."""


class AmbiguousNumber(LedgerError):
    """A number typed without its marks fits certificates of two series ("KĐ" and "KD")."""


class VerificationFailed(CertissuerError):
    """A document could not be checked at all (unreadable, not a PDF)."""

    exit_code = 8


class IssueRefused(CertissuerError):
    """A certificate may not be issued for this record (for example a failed instrument)."""

    exit_code = 9


class SignerRefused(IssueRefused):
    """The person printed over a signature has no key whose certificate names them, or two
    signatures of one certificate would be made with one key. `field` names the record's field
    ("head.name")."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.field = field


class RegisterRefused(IssueRefused):
    """The register forbids issuing this record (an expired standard or verifier card, a
    signatory or range outside the scope, a used stamp, a valid-until date off the cycle)."""
