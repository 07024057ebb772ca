"""Build ``batch.xlsx`` from the CSV sample set (``batch.csv`` and its list tables).

The workbook holds the same certificates as the CSV files, typed the way a person fills a
sheet in Excel: numbers as number cells (with a number format showing the decimals as written,
so "0.10" stays 0.10), dates as date cells, everything else as text. Run it after editing the
CSV samples::

    .venv/bin/python samples/make_xlsx.py            # writes samples/batch.xlsx
    .venv/bin/python samples/make_xlsx.py OUT.xlsx   # writes elsewhere
"""

from __future__ import annotations

import csv
import re
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
SHEETS = {
    "certificates": "batch.csv",
    "results": "batch.results.csv",
    "standards": "batch.standards.csv",
    "ranges": "batch.ranges.csv",
    "checks": "batch.checks.csv",
}
_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")
_DECIMAL = re.compile(r"-?(?:0|[1-9]\d*)\.(\d+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def typed(text: str) -> tuple[Any, str | None]:
    """Return the cell value for `text` and the number format it needs (None: the default)."""
    if _INTEGER.fullmatch(text):
        return int(text), None
    match = _DECIMAL.fullmatch(text)
    if match and Decimal(repr(float(text))) == Decimal(text):  # exact as a float: a number
        return float(text), "0." + "0" * len(match.group(1))
    if _DATE.fullmatch(text):
        return date.fromisoformat(text), "yyyy-mm-dd"
    return text, None


def build(source: Path, out: Path) -> None:
    """Write the workbook `out` from the CSV set in the folder `source`."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, name in SHEETS.items():
        sheet = workbook.create_sheet(title)
        with (source / name).open(encoding="utf-8", newline="") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                for column, text in enumerate(row, start=1):
                    if not text:
                        continue
                    value, number_format = (text, None) if number == 1 else typed(text)
                    cell = sheet.cell(row=number, column=column, value=value)
                    if number_format:
                        cell.number_format = number_format
    workbook.save(out)


if __name__ == "__main__":
    build(HERE, Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "batch.xlsx")
