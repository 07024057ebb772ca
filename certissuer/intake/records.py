"""What reading a results file gives: a `Record` per good certificate, a `Rejected` per bad one.

>>> Record(cert, "batch.csv", 2).row  # doctest: +SKIP
2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from certissuer._tables import MAX_TABLE_BYTES
from certissuer.errors import InputError
from certissuer.model import AnyCertificate

__all__ = ["MAX_INPUT_BYTES", "Record", "Rejected"]

MAX_INPUT_BYTES: Final = MAX_TABLE_BYTES
"""Largest input file read (each file of a CSV set counts on its own)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One certificate read and validated."""

    cert: AnyCertificate
    source: str
    """The input file path as given, for messages."""
    row: int
    """Row of the certificate as the user sees it: spreadsheets count the header, so the first
    data row is 2; JSON records count from 1."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """One certificate (or stray list-table row) that cannot be used, with all its problems."""

    source: str
    """The input file path as given (for a stray CSV list-table row: that table's path)."""
    row: int
    """Row as in `Record.row`; for a stray list-table row, its row in that table."""
    ref: str | None
    """The certificate's ``ref`` when one was given."""
    errors: tuple[InputError, ...]
    """Every problem found, each naming its file, row and field."""
