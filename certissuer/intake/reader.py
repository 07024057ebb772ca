"""Read certificates from a JSON, CSV or XLSX results file, with errors a technician can act on.

This is the only module that opens input files. The format follows the suffix: ``.json`` (one
certificate object or a list of them, read one record at a time), ``.csv`` (a main file plus
sibling list tables such as ``NAME.results.csv``) or ``.xlsx`` (sheets ``certificates``,
``results``, ``standards``, ``ranges``, ``checks``); ``.xml`` is a PTB DCC 3.1.2 document
(`certissuer.dcc` maps it back to the model, naming the line of each problem). The list tables
are indexed by ``ref`` in a temporary SQLite file: memory does not grow with the number of
rows. ``docs/INPUT-FORMATS.md`` describes the formats. Every problem becomes an `InputError`
that names the file (and sheet), the row as the user sees it, and the field:

    batch.results.csv, row 5, field 'uncertainty': expected a number, got '0,05'
    hint: use a dot as the decimal separator

>>> from pathlib import Path
>>> from certissuer import intake
>>> records = intake.read_certificates(Path("samples/batch.csv"))  # doctest: +SKIP
>>> [(r.row, r.cert.ref) for r in records]  # doctest: +SKIP
[(2, 'KD-REQ-2026-1102'), (3, 'HC-REQ-2026-0417'), (4, 'HC-REQ-2026-0512')]

`read_certificates` returns every certificate or raises `InputErrors` listing every problem;
`iter_records` yields a `Record` or a `Rejected` per certificate, for batch runs that carry on
past bad rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from certissuer import dcc
from certissuer._tables import check_file, check_unpacked_size, too_large
from certissuer.dcc import xmlsig
from certissuer.errors import InputError, InputErrors
from certissuer.intake.json_reader import json_records
from certissuer.intake.records import MAX_INPUT_BYTES, Record, Rejected
from certissuer.intake.tables import LIST_TABLES, csv_records, sibling, xlsx_records
from certissuer.intake.validate import Place, judge
from certissuer.model import certificate_json_schema

__all__ = ["certificate_schema_json", "iter_records", "read_certificates", "xml_records"]

_logger = logging.getLogger(__name__)

_SUFFIXES: Final = (".json", ".csv", ".xlsx", ".xml")


def iter_records(
    path: Path, *, max_bytes: int = MAX_INPUT_BYTES, fill: dcc.Fill | None = None
) -> Iterator[Record | Rejected]:
    """Yield one `Record` or `Rejected` per certificate of `path`, in input order.

    `path` is a ``.json``, ``.csv`` or ``.xlsx`` file (chosen by suffix; for CSV the sibling
    list tables ``NAME.results.csv`` etc. are read too) or ``.xml`` (a DCC). `max_bytes` caps
    the size of each file, checked before anything is read; `fill` gives what a DCC written
    elsewhere does not carry (`certissuer.dcc.Fill`). A bad certificate is yielded as
    `Rejected` and reading goes on; list-table rows whose ``ref`` matches no certificate are
    yielded as `Rejected` at the end.

    Raises `InputError` for problems with the file as a whole: an unknown suffix, a missing,
    empty or too large file, at once when called; broken UTF-8, broken JSON, a missing sheet or
    ``ref``/``kind`` column, or no certificates at all, while iterating.
    """
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            path,
            f"cannot read '{path.suffix or '(no suffix)'}' files: "
            f"expected one of {', '.join(_SUFFIXES)}",
            hint=(
                "open it in Excel and save it as .xlsx"
                if suffix in (".xls", ".ods", ".numbers")
                else "save the results as .json, .csv (UTF-8) or .xlsx"
            ),
        )
    check_file(path, max_bytes, empty_ok=False)
    _logger.debug("reading %s as %s", path, suffix)
    if suffix == ".json":
        return json_records(path, max_bytes)
    if suffix == ".xml":
        return xml_records(path, max_bytes, fill)
    if suffix == ".csv":
        present: dict[str, Path] = {}
        for name in LIST_TABLES:
            child = sibling(path, name)
            if child.exists():
                check_file(child, max_bytes, empty_ok=True)
                present[name] = child
        return csv_records(path, present, max_bytes)
    check_unpacked_size(path, max_bytes)
    return xlsx_records(path, max_bytes)


def read_certificates(
    path: Path, *, max_bytes: int = MAX_INPUT_BYTES, fill: dcc.Fill | None = None
) -> list[Record]:
    """Read every certificate of `path`, or report every problem at once.

    `path`, `max_bytes` and `fill` are as for `iter_records`. Returns the records in input order.
    Raises `InputErrors` carrying every problem found (a problem with the file as a whole comes
    last, after the problems of the certificates read before it), never only the first one.
    """
    records: list[Record] = []
    errors: list[InputError] = []
    try:
        for item in iter_records(path, max_bytes=max_bytes, fill=fill):
            if isinstance(item, Record):
                records.append(item)
            else:
                errors.extend(item.errors)
    except InputError as exc:
        errors.append(exc)
    if errors:
        raise InputErrors(errors)
    return records


def certificate_schema_json() -> str:
    """Return the JSON Schema of one certificate record (either kind) as indented JSON text."""
    return json.dumps(certificate_json_schema(), indent=2, ensure_ascii=False)


# --- whole files ---------------------------------------------------------------------------
# --- XML (a PTB DCC document) --------------------------------------------------------------


def xml_records(
    path: Path, max_bytes: int, fill: dcc.Fill | None = None
) -> Iterator[Record | Rejected]:
    """The certificates of a DCC document; problems name the line and the field.

    certissuer's own DCC 3.1.2 or 3.3.0 is read back exactly (`dcc.read_document`); a DCC 3.0
    to 3.3 written elsewhere is read as the schema allows (`dcc.read_foreign`), one certificate
    per item, with `fill` giving what it does not carry and one error listing what is missing.
    Either is first validated against the official schema of its version when that schema is
    found (`dcc.find_schema_dir`), and a document that breaks it is refused naming each line;
    when it is not found, a note says the document was not validated.
    """
    where = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror}") from exc
    if len(raw) > max_bytes:  # the file grew after the size check
        raise too_large(where, len(raw), max_bytes)
    root = dcc.parse_root(raw, where=where, max_bytes=max_bytes)
    _check_signatures(raw, root, where, fill)
    version = root.get("schemaVersion")
    if version not in dcc.WRITE_VERSIONS or dcc.is_foreign(root):
        yield from _foreign_records(root, where, version, fill)
        return
    schema = _schema_of(version, where, fill)
    doc = dcc.read_document(raw, where=where, schema=schema, max_bytes=max_bytes)
    if doc.data is None:  # not valid against the schema: nothing more to say
        yield Rejected(where, 1, None, tuple(doc.problems))
        return
    item = judge(where, doc.data, Place(where, 1, doc.ref), list(doc.problems))
    if isinstance(item, Rejected):
        seen = {e.field for e in doc.problems if e.field}
        errors = [doc.locate(e) for e in item.errors if e in doc.problems or e.field not in seen]
        item = Rejected(item.source, item.row, item.ref, tuple(errors))
    yield item


def _schema_of(version: str, where: str, fill: dcc.Fill | None) -> dcc.Schema | None:
    """The official schema of DCC `version` when it is found; else None, and a note (through
    `fill`'s report, or the log) that the document is read without validation."""
    folder = dcc.find_schema_dir(version=version)
    if folder is not None:
        return dcc.Schema.load(folder, version)
    note = (
        f"{where}: not validated: the official DCC {version} schema is not available "
        f"(certissuer validates DCC {', '.join(dcc.VALIDATED_VERSIONS)} with the schemas in "
        f"${dcc.SCHEMA_DIR_ENV} or shared/schemas/dcc)"
    )
    if fill is not None and fill.report is not None:
        fill.report(note)
    else:
        _logger.warning("%s", note)
    return None


def _check_signatures(raw: bytes, root: object, where: str, fill: dcc.Fill | None) -> None:
    """Say what each XML signature of the DCC showed; refuse a DCC whose signature is broken.

    A broken signature means the DCC was changed after its issuer signed it: the values read
    from it may not be the issuer's, so no certificate is made from it. The signatures are then
    taken out of the tree read (`xmlsig.strip`): only what they sign is read.
    """
    checks = xmlsig.check_signatures(raw, where=where)
    for check in checks:
        if check.state == "broken":  # the refusal is the one line said
            raise InputError(
                f"{where}, line {check.sourceline or 1}",
                check.line,
                hint="ask the issuer for the DCC as they signed it; certissuer does not issue "
                "from a DCC changed after signing",
            )
    if fill is not None and fill.report is not None:
        for line in [c.line for c in checks] or [xmlsig.NO_SIGNATURE]:
            fill.report(f"{where}: {line}")
    xmlsig.strip(root)


def _foreign_records(
    root: object, where: str, version: str | None, fill: dcc.Fill | None
) -> Iterator[Record | Rejected]:
    if not dcc.version_supported(version):
        raise InputError(
            f"{where}, line {getattr(root, 'sourceline', 1)}",
            f"a DCC of schema version {version or '(none)'}: certissuer reads DCC "
            f"{', '.join(dcc.READ_VERSIONS)}",
            hint="ask the issuer for the DCC in schema version 3.1.2 or newer",
        )
    assert version is not None  # version_supported() refuses a document without one
    fill = fill or dcc.Fill()
    schema = _schema_of(version, where, fill)
    if schema is not None:
        errors = schema.errors(root)
        if errors:
            yield Rejected(
                where,
                1,
                None,
                tuple(
                    InputError(
                        f"{where}, line {line}",
                        f"not valid against the DCC {version} schema: {message}",
                    )
                    for line, message in errors
                ),
            )
            return
    for imported in dcc.read_foreign(root, where=where, fill=fill):
        ref = imported.data.get("ref")
        if fill.report is not None:
            for line in imported.notes + imported.extras:
                fill.report(f"{where}, item {imported.item}: {line}")
        if imported.missing:
            error = dcc.missing_error(where, imported.missing, imported.item)
            yield Rejected(where, imported.item, ref, (error,))
            continue
        yield judge(where, imported.data, Place(where, imported.item, ref), [])
