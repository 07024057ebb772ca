"""The kinds of certificate, defined once.

Every module that branches on a certificate's kind, or checks a kind typed by a person, uses
`Kind` (or `KindName` where a plain string literal is needed, as in a paper copy's manifest).

>>> Kind("calibration") is Kind.CALIBRATION
True
"""

from enum import StrEnum
from typing import Literal, get_args

__all__ = ["KIND_NAMES", "Kind", "KindName"]


class Kind(StrEnum):
    """The three kinds of document: verification and calibration certificates, testing reports."""

    VERIFICATION = "verification"
    CALIBRATION = "calibration"
    TESTING = "testing"
    """Phiếu kết quả thử nghiệm / test report (issue 22)."""


KindName = Literal["verification", "calibration", "testing"]
"""A kind as the string a person types (a paper copy's ``kind``), the values of `Kind`."""

KIND_NAMES: tuple[str, ...] = get_args(KindName)
"""The kinds' names, in the order of `Kind`."""

assert tuple(k.value for k in Kind) == KIND_NAMES, "KindName and Kind must list the same kinds"
