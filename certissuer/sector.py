"""The sector export, kept importable here: it lives in `certissuer.report.sector`.

>>> from certissuer.sector import sector_export  # the same as certissuer.report.sector
"""

from certissuer.report.sector import (
    COLUMNS,
    FORMAT,
    RECORD_TYPES,
    VERSION,
    Cursor,
    SectorExport,
    SectorFormat,
    sector_export,
    write_sector_export,
)

__all__ = [
    "COLUMNS",
    "FORMAT",
    "RECORD_TYPES",
    "VERSION",
    "Cursor",
    "SectorExport",
    "SectorFormat",
    "sector_export",
    "write_sector_export",
]
