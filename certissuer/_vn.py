"""Vietnam's time zone and the folding of Vietnamese text, in one place.

Every module that shows a date to people, names a file after a certificate number or matches
names typed by people uses these, so "KĐ-2026-000001" becomes the same file name everywhere
and "Đồng Tháp" the same English line.

>>> strip_marks("Đồng Tháp")
'Dong Thap'
>>> file_stem("KĐ-2026-000001")
'KD-2026-000001'
>>> fold("  Vĩnh   LONG ")
'vĩnh long'
>>> search_key("VĨNH  Long"), search_key("đồng tháp")
('vinh long', 'dong thap')
>>> number_key("out/kd-2026-000001.pdf")
'KD-2026-000001'
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = [
    "LATIN_FOLD",
    "VIETNAM_TZ",
    "dmy",
    "file_stem",
    "fold",
    "local_date",
    "local_time",
    "number_key",
    "same_name",
    "search_key",
    "strip_marks",
]

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")
"""Indochina Time (UTC+7, no daylight saving): the dates on certificates and pages."""


def strip_marks(text: str) -> str:
    """`text` without diacritics, Đ/đ as D/d; every other character is kept."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def file_stem(text: str) -> str:
    """An ASCII name for `text`: letters, digits, '-', '_' and '.' only, marks dropped."""
    return "".join(c for c in strip_marks(text) if c.isascii() and (c.isalnum() or c in "-_."))


def fold(text: str) -> str:
    """A key for comparing names people type: NFC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def same_name(a: str, b: str) -> bool:
    """True when `a` and `b` are one person's name: diacritics, case and spacing aside.

    How a printed name is matched with a key certificate's common name.
    """
    return search_key(a) == search_key(b)


def search_key(text: str) -> str:
    """A key for finding names people type: `fold` without diacritics ("VĨNH LONG" and
    "vinh long" both give "vinh long"; Đ/đ as d)."""
    return fold(strip_marks(text))


def _latin_fold() -> tuple[str, str]:
    # Every precomposed Latin letter with marks (Vietnamese ones included) and its bare
    # letter, then the combining marks alone (to delete: text stored decomposed).
    source, target = [], []
    for code in [*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)]:
        char = chr(code)
        bare = strip_marks(char)
        if bare != char and len(bare) == 1 and bare.isascii() and bare.isalpha():
            source.append(char)
            target.append(bare)
    marks = [chr(c) for c in range(0x0300, 0x0370) if unicodedata.combining(chr(c))]
    return "".join(source + marks), "".join(target)


LATIN_FOLD: tuple[str, str] = _latin_fold()
"""(from, to) for SQL ``translate(text, from, to)``: each letter with marks becomes its bare
letter and each combining mark (past the end of `to`) is deleted, so ``lower(translate(…))``
in the database gives `search_key`'s letters."""


def number_key(text: str) -> str:
    """The key a certificate number is found by, as people type it.

    "KĐ-2026-000001", "KD-2026-000001", "kđ-2026-000001" and the file name of its PDF
    ("out/KD-2026-000001.pdf") all give "KD-2026-000001": the last path part, without a
    ".pdf" ending, marks dropped (Đ as D), upper case.
    """
    name = text.strip().replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name.lower().endswith(".pdf"):
        name = name[:-4]
    return strip_marks(unicodedata.normalize("NFC", name)).upper()


def local_date(moment: datetime) -> date:
    """The date in Vietnam at `moment` (a naive `moment` is UTC, as the ledger stores it)."""
    return local_time(moment).date()


def local_time(moment: datetime) -> datetime:
    """`moment` on Vietnam's clock (a naive `moment` is UTC, as the ledger stores it)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(VIETNAM_TZ)


def dmy(value: date) -> str:
    """dd/mm/yyyy, as dates print on certificates, pages and letters."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
