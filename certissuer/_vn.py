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
"""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta, timezone

__all__ = ["VIETNAM_TZ", "dmy", "file_stem", "fold", "strip_marks"]

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


def dmy(value: date) -> str:
    """dd/mm/yyyy, as dates print on certificates, pages and letters."""
    return f"{value.day:02d}/{value.month:02d}/{value.year:04d}"
