"""Machine-readable certificates: PTB Digital Calibration Certificate (DCC) 3.1.2 XML (and
3.3.0, the newest, on request).

A certificate of either kind maps to one DCC document: administrative data (software, core data
with the certificate number and the lab's reference, the item, the lab, the responsible persons,
the customer or owner, statements), and one measurement result with the method, the reference
standards, the environmental conditions and the results as D-SI quantities (value, D-SI unit such
as ``\\kilogram``, expanded uncertainty with coverage factor and coverage probability). Every
document is validated against the official schema (``dcc-3.1.2.xsd`` with ``SI_Format-2.1.0.xsd``;
for 3.3.0 ``dcc-3.3.0.xsd`` or ``3.3.0/dcc.xsd`` with its D-SI schema) before it leaves this
module: invalid output is a bug and is never written.

The mapping goes both ways: `read_document` maps a DCC back to the model's fields (hardened: no
DTD, no entities, no network, one schema version), so ``certissuer issue FILE.xml`` accepts the
documents this module writes, and model → DCC → model gives back the same certificate, Decimal
digits, units and uncertainties included.

The DCC goes into the PDF before it is signed, as an associated file (``/AF``, relationship
``/Source``, MIME type ``application/xml``), so the one signature covers both.

>>> schema = Schema.load(find_schema_dir(settings))  # doctest: +SKIP
>>> xml = to_xml(cert, number="HC-2026-000001", settings=settings, schema=schema)  # doctest: +SKIP
>>> read_certificate(xml) == cert  # doctest: +SKIP
True
>>> writer = DccWriter.from_settings(settings)  # doctest: +SKIP
>>> pdf_with_dcc = writer.embed(pdf, cert, number="HC-2026-000001")  # doctest: +SKIP
>>> extract(pdf_with_dcc) == xml  # doctest: +SKIP
True

Units: `dsi_unit` maps every legal unit symbol the intake accepts (`model.is_legal_unit`) to
D-SI, or to None for the few that have no D-SI form (``var``, ``kvarh``, ``pH``, ``°Bx``,
``kgf/cm²``, a prefix on ``kg/m³``); `problems` reports those, and anything else the schema
could not hold, at intake. Where the D-SI unit maps back to another symbol than the one printed
(``%RH`` and ``%`` are both ``\\percent``), the printed symbol travels in a ``nonSIUnit``
metadata entry so that the round trip is exact.

The package is laid out by step: `schema` (the format, the official schema, `DccError`),
`units` (D-SI), `write` (model → XML, `DccWriter`), `read` (XML → model) and `pdf` (embedding,
extraction and the check of an embedded DCC against the ledger).
"""

from certissuer.dcc.foreign import (
    READ_VERSIONS,
    Fill,
    Imported,
    is_foreign,
    missing_error,
    read_foreign,
    version_supported,
)
from certissuer.dcc.pdf import check_embedded, embed, extract
from certissuer.dcc.read import DccDocument, parse_root, read_certificate, read_document
from certissuer.dcc.schema import (
    DCC_NAMESPACE,
    MAX_XML_BYTES,
    NEWEST_VERSION,
    SCHEMA_DIR_ENV,
    SCHEMA_VERSION,
    SI_NAMESPACE,
    VALIDATED_VERSIONS,
    WRITE_VERSIONS,
    DccError,
    Schema,
    check_write_version,
    find_schema_dir,
    load_schema,
)
from certissuer.dcc.units import dsi_unit, unit_symbol
from certissuer.dcc.write import DccWriter, export_entry, problems, to_xml

__all__ = [
    "DCC_NAMESPACE",
    "MAX_XML_BYTES",
    "NEWEST_VERSION",
    "READ_VERSIONS",
    "SCHEMA_DIR_ENV",
    "SCHEMA_VERSION",
    "SI_NAMESPACE",
    "VALIDATED_VERSIONS",
    "WRITE_VERSIONS",
    "DccDocument",
    "DccError",
    "DccWriter",
    "Fill",
    "Imported",
    "Schema",
    "check_embedded",
    "check_write_version",
    "dsi_unit",
    "embed",
    "export_entry",
    "extract",
    "find_schema_dir",
    "is_foreign",
    "load_schema",
    "missing_error",
    "parse_root",
    "problems",
    "read_certificate",
    "read_document",
    "read_foreign",
    "to_xml",
    "unit_symbol",
    "version_supported",
]
