"""The ledger export, kept importable here: it lives in `certissuer.report.export`.

>>> from certissuer.export import export_entries  # the same as certissuer.report.export
"""

from certissuer.report.export import COLUMNS, ExportFormat, entry_row, export_entries

__all__ = ["COLUMNS", "ExportFormat", "entry_row", "export_entries"]
