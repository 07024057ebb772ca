"""Read certificates from a JSON, CSV, XLSX or DCC XML results file, with errors a technician
can act on; read the manifest of paper certificates to digitise.

The package is laid out by step: `reader` (the entry points, by suffix), `json_reader` (JSON,
one record at a time), `tables` (CSV sets and workbooks, joined by ``ref``), `validate`
(pydantic errors worded as file, row (sheet) and field), `records` (what reading gives) and
`manifest` (the metadata sheet of paper copies and their scans). Files are opened and bounded
by `certissuer._tables`.

>>> from certissuer import intake
>>> records = intake.read_certificates(Path("samples/batch.csv"))  # doctest: +SKIP
>>> [(r.row, r.cert.ref) for r in records]  # doctest: +SKIP
[(2, 'KD-REQ-2026-1102'), (3, 'HC-REQ-2026-0417'), (4, 'HC-REQ-2026-0512')]
"""

from certissuer.intake.reader import certificate_schema_json, iter_records, read_certificates
from certissuer.intake.records import MAX_INPUT_BYTES, Record, Rejected

__all__ = [
    "MAX_INPUT_BYTES",
    "Record",
    "Rejected",
    "certificate_schema_json",
    "iter_records",
    "read_certificates",
]
