"""DCC 3.1.2 or 3.3.0 XML → model: a hardened reader that names the line of every problem.

`read_document` maps a DCC back to the model's fields (no DTD, no entities, no network, the
versions certissuer writes), so ``certissuer issue FILE.xml`` accepts the documents
`certissuer.dcc.write` makes, and model → DCC → model gives back the same certificate,
Decimal digits, units and uncertainties included. Where the D-SI unit maps back to another
symbol than the one printed (``%RH`` and ``%`` are both ``\\percent``), the printed symbol
travels in a ``nonSIUnit`` metadata entry so that the round trip is exact.

>>> read_certificate(xml) == cert  # doctest: +SKIP
True
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Final

from lxml import etree

from certissuer.dcc.schema import DCC_PREFIX as _D
from certissuer.dcc.schema import (
    MAX_XML_BYTES,
    ROOT_TAG,
    SCHEMA_VERSION,
    STAGE_REFTYPE,
    WRITE_VERSIONS,
    Schema,
    short_names,
)
from certissuer.dcc.schema import SI_PREFIX as _S
from certissuer.dcc.units import dsi_unit, unit_symbol
from certissuer.errors import InputError, InputErrors
from certissuer.model import RELATIVE_MPE_UNITS, AnyCertificate, field_path, parse_certificate

__all__ = [
    "DccDocument",
    "parse_root",
    "read_certificate",
    "read_document",
    "read_with_document",
]


@dataclass
class DccDocument:
    """A DCC document read back into the model's fields, with where each field came from."""

    where: str
    """The file, for messages."""
    data: dict[str, Any] | None
    """The certificate record (as read from JSON); None when the document broke the schema."""
    number: str | None = None
    """The document's unique identifier (the number it was issued under), if any."""
    problems: list[InputError] = field(default_factory=list)
    """Problems found while mapping the document, each with its line and field."""
    lines: dict[str, int] = field(default_factory=dict)
    """Source line of each field, by its path in JSON notation (``results[2].unit``)."""

    @property
    def ref(self) -> str | None:
        """The lab's reference of the record, when the document gives one."""
        ref = (self.data or {}).get("ref")
        return ref if isinstance(ref, str) else None

    def line_of(self, path: str) -> int:
        """The source line for the field `path`, or of the nearest enclosing element."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[\]]*|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.lines.get("", 1)

    def locate(self, error: InputError) -> InputError:
        """`error` (as the intake words it for this document) with the line of its field."""
        if error.path != self.where:
            return error  # already located
        return InputError(
            self._at(self.line_of(error.field or "")),
            error.problem,
            field=error.field,
            hint=error.hint,
        )

    def _at(self, line: int) -> str:
        return f"{self.where}, line {line}"

    def _problem(
        self, line: int, field_: str | None, problem: str, hint: str | None = None
    ) -> None:
        self.problems.append(InputError(self._at(line), problem, field=field_, hint=hint))


_PROLOG: Final = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)
"""What may come before a DOCTYPE: a byte-order mark, the XML declaration, PIs, comments."""


_OWN_UNITS: Final = {
    "certissuer_scaleInterval": ("certissuer_scaleIntervalUnit", "scale_interval_unit"),
    "certissuer_mpe": ("certissuer_mpeUnit", "mpe_unit"),
}
"""A value's refType → the refType of the entry naming its own unit, and the model field."""

_VER_LISTS: Final[dict[str, tuple[str, dict[str, str]]]] = {
    "certissuer_range": (
        "ranges",
        {
            "certissuer_rangeMin": "lower",
            "certissuer_rangeMax": "upper",
            "certissuer_scaleInterval": "scale_interval",
            "certissuer_mpe": "mpe",
        },
    ),
    "certissuer_check": (
        "checks",
        {
            "basic_nominalValue": "nominal",
            "basic_measurementError": "error",
            "certissuer_mpe": "mpe",
            "certissuer_checkUncertainty": "uncertainty",
        },
    ),
}
"""A verification result's refType: the list it is a row of, and its quantities' fields."""


def _doctype_refused(where: str) -> InputError:
    return InputError(
        where,
        "the document has a DOCTYPE declaration: DTDs and entities are not allowed in a DCC",
        hint="remove the <!DOCTYPE ...> line and any entity references",
    )


def _parser() -> Any:
    # NOTE: a parser per document (lxml parsers are not thread-safe). No DTD is loaded, no
    # entity is resolved, nothing is fetched; huge_tree stays off (libxml2's depth and size
    # limits apply). Comments and processing instructions are dropped so text reads whole.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        # NOTE: not collect_ids=False: with it, lxml 6.1 / libxml2 2.14 opened the external
        # DTD named by a DOCTYPE despite load_dtd=False (found by test_dcc's FIFO test).
    )


def parse_root(raw: bytes, *, where: str, max_bytes: int = MAX_XML_BYTES) -> Any:
    """The root element of the DCC document `raw`, parsed hardened (see `read_document`).

    Raises `InputError` for a document larger than `max_bytes`, not well-formed, with a
    DOCTYPE, or whose root is not a DCC's; the schema version is not checked here.
    """
    if len(raw) > max_bytes:
        raise InputError(
            where, f"the document is {len(raw)} bytes, more than the limit of {max_bytes}"
        )
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:4]:
        raise InputError(where, "the document is not UTF-8 XML", hint="save it as UTF-8")
    prolog = _PROLOG.match(raw)
    if prolog is not None and raw.startswith(b"<!DOCTYPE", prolog.end()):
        # Refused before libxml2 sees it: no DTD, entity declaration or expansion is ever read.
        raise _doctype_refused(where)
    try:
        tree = etree.parse(BytesIO(raw), _parser())
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None) or 1
        raise InputError(
            f"{where}, line {line}",
            f"not well-formed XML: {exc.msg}",
            hint="check that every element is closed and special characters are escaped",
        ) from exc
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise _doctype_refused(where)
    root = tree.getroot()
    if root.tag != ROOT_TAG:
        raise InputError(
            f"{where}, line {root.sourceline}",
            f"not a DCC document: the root element is '{short_names(root.tag)}', expected "
            "'dcc:digitalCalibrationCertificate' in namespace https://ptb.de/dcc",
        )
    return root


def read_document(
    raw: bytes, *, where: str, schema: Schema | None = None, max_bytes: int = MAX_XML_BYTES
) -> DccDocument:
    """Parse the DCC document `raw` and map it to the model's fields.

    `where` names the file in messages ("file, line N, field 'x'"). `schema`, when given,
    validates the document first (it must be the schema of the document's version); a document
    that breaks it comes back with `DccDocument.data` None and the schema's complaints as
    `problems`. Raises `InputError` for a document that cannot be used at all: larger than
    `max_bytes`, not well-formed XML, with a DOCTYPE (DTDs and entities are refused, never
    read), not a DCC, or a DCC of a schema version certissuer does not write
    (`WRITE_VERSIONS`) or of another version than `schema`'s.
    """
    root = parse_root(raw, where=where, max_bytes=max_bytes)
    tree = root.getroottree()
    version = root.get("schemaVersion")
    expected = (schema.version,) if schema is not None else WRITE_VERSIONS
    if version not in expected:
        raise InputError(
            f"{where}, line {root.sourceline}",
            f"a DCC of schema version {version or '(none)'}: expected version "
            f"{' or '.join(expected)}",
            hint=f"export the certificate as DCC {SCHEMA_VERSION}",
        )
    if schema is not None:
        errors = schema.errors(tree)
        if errors:
            doc = DccDocument(where, None)
            for line, message in errors:
                doc._problem(line, None, f"not valid against the DCC {version} schema: {message}")
            return doc
    return _Reader(where, root).read()


def read_certificate(
    raw: bytes, *, where: str = "DCC", schema: Schema | None = None, stored: bool = False
) -> AnyCertificate:
    """The certificate held by the DCC document `raw` (see `read_document`).

    `stored` True reads the DCC of an issued certificate as it was issued
    (`certissuer.model.parse_certificate`); input is read with False. Raises `InputError`
    for an unusable document and `InputErrors` listing every problem of a document that
    does not make a valid certificate.
    """
    return read_with_document(raw, where, schema, stored=stored)[1]


def read_with_document(
    raw: bytes, where: str, schema: Schema | None, *, stored: bool = False
) -> tuple[DccDocument, AnyCertificate]:
    """The document `raw` and its certificate (see `read_document`, `read_certificate`);
    `stored` True for the DCC of an issued certificate (`parse_certificate`), never for
    input."""
    from pydantic import ValidationError

    doc = read_document(raw, where=where, schema=schema)
    if doc.problems or doc.data is None:
        raise InputErrors(doc.problems)
    try:
        return doc, parse_certificate(doc.data, stored=stored)
    except ValidationError as exc:
        errors = []
        for detail in exc.errors(include_url=False):
            path = field_path(detail["loc"][1:])  # after the kind tag
            errors.append(InputError(doc._at(doc.line_of(path)), detail["msg"], field=path or None))
        raise InputErrors(errors) from exc


def _ref_types(el: Any) -> list[str]:
    value = el.get("refType") or ""
    return value.split()


def _content_text(el: Any | None) -> str | None:
    """The text of a dcc:textType or richContentType: its contents joined by " / "."""
    if el is None:
        return None
    parts = [c.text or "" for c in el.findall(_D + "content")]
    return " / ".join(parts) if parts else ""


class _Reader:
    """Maps one DCC document to a certificate record, recording the line of each field."""

    def __init__(self, where: str, root: Any) -> None:
        self.root = root
        self.doc = DccDocument(where, {}, lines={"": root.sourceline})

    def read(self) -> DccDocument:
        doc, root = self.doc, self.root
        data: dict[str, Any] = {}
        doc.data = data
        result = self._one(root, "measurementResults/dcc:measurementResult", "measurementResult")
        ref_types = _ref_types(result) if result is not None else []
        if "certissuer_verification" in ref_types:
            kind = "verification"
        elif "certissuer_testing" in ref_types:
            kind = "testing"  # issue 22: a testing report, read as a calibration is
        else:
            kind = "calibration"
        data["kind"] = kind
        if kind == "testing":
            kind = "calibration"  # the same fields, in the same places
        adm = root.find(_D + "administrativeData")
        core = adm.find(_D + "coreData") if adm is not None else None
        if core is not None:
            doc.number = (core.findtext(_D + "uniqueIdentifier") or "").strip() or None
            ref = self._identification(core, "certissuer_ref", "calibrationLaboratory")
            if ref is not None:
                self._set(data, "ref", ref.findtext(_D + "value"), ref)
            elif doc.number is not None:
                self._set(data, "ref", doc.number, core.find(_D + "uniqueIdentifier"))
            self._dates(data, core, kind)
        if adm is not None:
            self._item(data, adm, kind)
            self._persons(data, adm, kind)
            customer = adm.find(_D + "customer")
            if customer is not None:
                key = "customer" if kind == "calibration" else "owner"
                self._set(data, key, self._party(customer, key), customer)
            statements = adm.find(_D + "statements")
            if statements is not None:
                self._statements(data, statements, kind)
        if result is not None:
            method = result.find(f"{_D}usedMethods/{_D}usedMethod/{_D}name")
            if method is not None:
                self._set(data, "method", _content_text(method), method)
            if kind == "calibration":
                self._standards(data, result)
                self._conditions(data, result)
                self._cal_results(data, result)
            else:
                self._ver_results(data, result)
        return doc

    # -- helpers ------------------------------------------------------------------------

    def _set(self, target: dict[str, Any], path: str, value: Any, el: Any) -> None:
        """Set `path` (JSON notation, from the record's root) in `target`, remembering the line."""
        target[path.rsplit(".", 1)[-1]] = value
        if el is not None:
            self.doc.lines[path] = el.sourceline

    def _row(self, rows: list[dict[str, Any]], key: str, el: Any) -> tuple[str, dict[str, Any]]:
        """A new row of the list `key`, read from `el`: its path (``results[2]``) and its data."""
        here = f"{key}[{len(rows)}]"
        out: dict[str, Any] = {}
        rows.append(out)
        self.doc.lines[here] = el.sourceline
        return here, out

    def _rows(
        self, data: dict[str, Any], key: str, elements: Sequence[Any]
    ) -> Iterator[tuple[Any, str, dict[str, Any]]]:
        """Each of `elements` with its row of the list `key` in `data` (see `_row`)."""
        rows: list[dict[str, Any]] = []
        if elements:
            self._set(data, key, rows, elements[0].getparent())
        for el in elements:
            here, out = self._row(rows, key, el)
            yield el, here, out

    def _one(self, parent: Any, path: str, name: str) -> Any | None:
        found = parent.findall(_D + path.replace("dcc:", _D))
        if len(found) > 1:
            self.doc._problem(
                found[1].sourceline,
                None,
                f"expected one {name}, found {len(found)}: certissuer reads one item and one "
                "measurement result per certificate",
            )
        return found[0] if found else None

    @staticmethod
    def _identification(parent: Any, ref_type: str, issuer: str | None = None) -> Any | None:
        idents = parent.findall(f"{_D}identifications/{_D}identification")
        for ident in idents:
            if ref_type in _ref_types(ident):
                return ident
        for ident in idents:  # a DCC from elsewhere: the first one from the right issuer
            if issuer is not None and (ident.findtext(_D + "issuer") or "").strip() == issuer:
                return ident
        return None

    def _party(self, contact: Any, key: str) -> dict[str, Any]:
        party: dict[str, Any] = {}
        name = contact.find(_D + "name")
        if name is not None:
            self._set(party, f"{key}.name", _content_text(name), name)
        further = contact.find(f"{_D}location/{_D}further")
        address = _content_text(further)
        if address:
            self._set(party, f"{key}.address", address, further)
        return party

    def _dates(self, data: dict[str, Any], core: Any, kind: str) -> None:
        begin = core.find(_D + "beginPerformanceDate")
        end = core.find(_D + "endPerformanceDate")
        field_ = "calibrated" if kind == "calibration" else "verification_date"
        if (
            begin is not None
            and end is not None
            and (begin.text or "").strip() != (end.text or "").strip()
        ):
            self.doc._problem(
                end.sourceline,
                field_,
                f"expected the work on one day (beginPerformanceDate {begin.text}, "
                f"endPerformanceDate {end.text})",
                hint="certissuer records one calibration or verification date",
            )
        if end is not None:
            self._set(data, field_, (end.text or "").strip(), end)
        receipt = core.find(_D + "receiptDate")
        if kind == "calibration" and receipt is not None:
            self._set(data, "received", (receipt.text or "").strip(), receipt)

    def _item(self, data: dict[str, Any], adm: Any, kind: str) -> None:
        item = self._one(adm, "items/dcc:item", "item")
        if item is None:
            return
        key = "item" if kind == "calibration" else "instrument"
        out: dict[str, Any] = {}
        self._set(data, key, out, item)
        name = item.find(_D + "name")
        if name is not None:
            self._set(out, f"{key}.name", _content_text(name), name)
        for content in item.findall(f"{_D}description/{_D}content"):
            types = _ref_types(content)
            if "certissuer_yearOfManufacture" in types:
                self._set(out, f"{key}.year", (content.text or "").strip(), content)
            elif "certissuer_condition" in types:
                self._set(out, f"{key}.condition", content.text or "", content)
        maker = item.find(f"{_D}manufacturer/{_D}name")
        if maker is not None and _content_text(maker):
            self._set(out, f"{key}.manufacturer", _content_text(maker), maker)
        model = item.find(_D + "model")
        if model is not None and (model.text or "").strip():
            self._set(out, f"{key}.model", model.text, model)
        serial = self._identification(item, "certissuer_serial", "manufacturer")
        if serial is not None:
            self._set(out, f"{key}.serial", serial.findtext(_D + "value"), serial)
        stamp = self._identification(item, "certissuer_stampNumber")
        if kind == "verification" and stamp is not None:
            self._set(data, "stamp_number", stamp.findtext(_D + "value"), stamp)

    def _persons(self, data: dict[str, Any], adm: Any, kind: str) -> None:
        roles = (
            ("performed_by", "checked_by", "signatory")
            if kind == "calibration"
            else ("verifier", "head")
        )
        for person in adm.findall(f"{_D}respPersons/{_D}respPerson"):
            role = (person.findtext(_D + "role") or "").strip()
            if role not in roles:
                continue  # other responsible persons are not part of the model
            out: dict[str, Any] = {}
            self._set(data, role, out, person)
            name = person.find(f"{_D}person/{_D}name")
            if name is not None:
                self._set(out, f"{role}.name", _content_text(name), name)
            title = person.find(_D + "description")
            if title is not None and _content_text(title):
                self._set(out, f"{role}.title", _content_text(title), title)

    def _statements(self, data: dict[str, Any], statements: Any, kind: str) -> None:
        for statement in statements.findall(_D + "statement"):
            types = _ref_types(statement)
            declaration = statement.find(_D + "declaration")
            if "certissuer_place" in types:
                further = statement.find(f"{_D}location/{_D}further")
                key = "place_of_calibration" if kind == "calibration" else "place_of_use"
                self._set(
                    data, key, _content_text(further), further if further is not None else statement
                )
            elif "certissuer_verificationMode" in types and kind == "verification":
                convention = statement.find(_D + "convention")
                self._set(
                    data, "mode", (statement.findtext(_D + "convention") or "").strip(), convention
                )
            elif "basic_conformity" in types and kind == "calibration":
                out: dict[str, Any] = {}
                self._set(data, "conformity", out, statement)
                if declaration is not None:
                    self._set(out, "conformity.statement", _content_text(declaration), declaration)
                rule = statement.find(_D + "convention")
                if rule is not None:
                    self._set(out, "conformity.decision_rule", rule.text or "", rule)
                self._conformity_spec(statement, out)
            elif "certissuer_validUntil" in types:
                when = statement.find(_D + "date")
                if when is not None:
                    self._set(data, "valid_until", (when.text or "").strip(), when)
            elif "certissuer_deviations" in types and kind == "calibration":
                self._set(data, "deviations", _content_text(declaration), declaration)
            elif "certissuer_replaces" in types:
                out = {}
                self._set(data, "replaces", out, statement)
                number = statement.find(_D + "reference")
                if number is not None:
                    self._set(out, "replaces.number", number.text or "", number)
                if declaration is not None:
                    self._set(out, "replaces.reason", _content_text(declaration), declaration)
            elif "certissuer_languageNote" in types:
                self._set(data, "language_note", _content_text(declaration), declaration)
            elif "certissuer_externalProvider" in types and kind == "calibration":
                self._set(data, "external_provider", _content_text(declaration), declaration)
            elif "certissuer_sourceNotes" in types and kind == "calibration":
                lines = [c.text or "" for c in declaration.findall(_D + "content")]
                self._set(data, "source_notes", lines, declaration)
            elif "certissuer_extraColumn" in types and kind == "calibration":
                column: dict[str, Any] = {}
                columns = data.setdefault("extra_columns", [])
                here = f"extra_columns[{len(columns)}]"
                columns.append(column)
                self.doc.lines[here] = statement.sourceline
                for content in [] if declaration is None else declaration.findall(_D + "content"):
                    key = {"vi": "vi", "en": "en"}.get(content.get("lang") or "", "name")
                    self._set(column, f"{here}.{key}", content.text or "", content)
            elif "certissuer_customerSupplied" in types and kind == "calibration":
                fields = (_content_text(declaration) or "").split()
                self._set(data, "customer_supplied", fields, declaration)

    def _standards(self, data: dict[str, Any], result: Any) -> None:
        equipment = result.findall(f"{_D}measuringEquipments/{_D}measuringEquipment")
        for item, here, out in self._rows(data, "standards", equipment):
            name = item.find(_D + "name")
            if name is not None:
                self._set(out, f"{here}.name", _content_text(name), name)
            for content in item.findall(f"{_D}description/{_D}content"):
                kinds = _ref_types(content)
                if "certissuer_calibrationDue" in kinds:
                    self._set(out, f"{here}.calibration_due", (content.text or "").strip(), content)
                elif "certissuer_traceableTo" in kinds:
                    self._set(out, f"{here}.traceable_to", (content.text or "").strip(), content)
                elif "certissuer_calibratedBy" in kinds:
                    self._set(out, f"{here}.calibrated_by", (content.text or "").strip(), content)
            serial = self._identification(item, "certissuer_serial")
            if serial is not None:
                self._set(out, f"{here}.serial", serial.findtext(_D + "value"), serial)
            number = self._identification(item, "certissuer_certificateNumber")
            if number is not None:
                self._set(out, f"{here}.certificate_number", number.findtext(_D + "value"), number)

    def _conditions(self, data: dict[str, Any], result: Any) -> None:
        out: dict[str, Any] = {}
        names = {"basic_temperature": "temperature", "basic_humidityRelative": "humidity"}
        units = {"temperature": r"\degreecelsius", "humidity": r"\percent"}
        for condition in result.findall(f"{_D}influenceConditions/{_D}influenceCondition"):
            key = next((names[t] for t in _ref_types(condition) if t in names), None)
            if key is None:
                continue  # other conditions are not part of the model
            for quantity in condition.findall(f"{_D}data/{_D}quantity"):
                types = _ref_types(quantity)
                name = f"{key}_uncertainty" if "certissuer_uncertainty" in types else key
                real = self._real(quantity, f"conditions.{name}", units[key])
                if real is not None:
                    self._set(out, f"conditions.{name}", real[0], quantity)
        if out:
            self._set(data, "conditions", out, result.find(_D + "influenceConditions"))

    def _real(
        self, quantity: Any, path: str, expected_dsi: str | None = None
    ) -> tuple[str, str, Any] | None:
        """``(value, D-SI unit, si:real element)`` of a dcc:quantity, or None (problem noted)."""
        real = quantity.find(_S + "real")
        if real is None:
            self.doc._problem(quantity.sourceline, path, "expected a D-SI value (si:real)")
            return None
        value = (real.findtext(_S + "value") or "").strip()
        dsi = (real.findtext(_S + "unit") or "").strip()
        if expected_dsi is not None and dsi != expected_dsi:
            self.doc._problem(
                real.sourceline, path, f"expected the D-SI unit {expected_dsi}, got '{dsi}'"
            )
            return None
        return value, dsi, real

    def _list(self, result: Any, here: str) -> tuple[Any, dict[str, Any]] | None:
        data_list = result.find(f"{_D}data/{_D}list")
        if data_list is None:
            self.doc._problem(result.sourceline, here, "expected the values in a dcc:list")
            return None
        quantities: dict[str, Any] = {}
        for quantity in data_list.findall(_D + "quantity"):
            for ref_type in _ref_types(quantity):
                quantities.setdefault(ref_type, quantity)
        return data_list, quantities

    def _unit(self, data_list: Any, out: dict[str, Any], here: str, dsi_units: set[str]) -> None:
        """The printed unit of a list: its nonSIUnit entry, else the symbol of its D-SI unit."""
        if len(dsi_units) > 1:
            self.doc._problem(
                data_list.sourceline,
                f"{here}.unit",
                f"expected one unit for the values of an entry, got {', '.join(sorted(dsi_units))}",
            )
            return
        if not dsi_units:
            return
        dsi = next(iter(dsi_units))
        printed = None
        for meta in data_list.findall(f"{_D}measurementMetaData/{_D}metaData"):
            if "certissuer_unitSymbol" in _ref_types(meta):
                printed = meta.find(_D + "nonSIUnit")
        if printed is not None:
            symbol = (printed.text or "").strip()
            if dsi_unit(symbol) != dsi:
                self.doc._problem(
                    printed.sourceline,
                    f"{here}.unit",
                    f"the unit symbol '{symbol}' does not match the D-SI unit {dsi}",
                )
                return
            self._set(out, f"{here}.unit", symbol, printed)
            return
        symbol = unit_symbol(dsi)
        if symbol is None:
            self.doc._problem(
                data_list.sourceline,
                f"{here}.unit",
                f"the D-SI unit '{dsi}' is not one certissuer can print",
                hint="use the D-SI form of a legal unit, for example \\kilogram, \\degreecelsius, "
                "\\litre\\per\\minute",
            )
            return
        self._set(out, f"{here}.unit", symbol, data_list)

    def _values(
        self,
        quantities: Mapping[str, Any],
        here: str,
        names: Mapping[str, str],
        out: dict[str, Any],
    ) -> set[str]:
        dsi_units: set[str] = set()
        for ref_type, name in names.items():
            quantity = quantities.get(ref_type)
            if quantity is None:
                continue
            real = self._real(quantity, f"{here}.{name}")
            if real is None:
                continue
            value, dsi, _ = real
            dsi_units.add(dsi)
            self._set(out, f"{here}.{name}", value, quantity)
        return dsi_units

    def _testing_rows(self, data: dict[str, Any], result: Any) -> None:
        """A testing report's rows and report-wide fields (issue 22), as
        `certissuer.dcc.write.testing_rows` writes them: every field as its text."""
        tests = [
            e
            for e in result.findall(f"{_D}results/{_D}result")
            if "certissuer_test" in _ref_types(e)
        ]
        for entry, here, out in self._rows(data, "tests", tests):
            name = entry.find(_D + "name")
            self._set(out, f"{here}.parameter", _content_text(name) or "", name)
            self._text_quantities(entry, here, out)
        for entry in result.findall(f"{_D}results/{_D}result"):
            if "certissuer_testing_report" in _ref_types(entry):
                self._text_quantities(entry, "", data)

    def _text_quantities(self, entry: Any, here: str, out: dict[str, Any]) -> None:
        for quantity in entry.findall(f"{_D}data/{_D}list/{_D}quantity"):
            kinds = [t for t in _ref_types(quantity) if t.startswith("certissuer_test_")]
            if kinds:
                field = kinds[0].removeprefix("certissuer_test_")
                value = _content_text(quantity.find(_D + "noQuantity")) or ""
                self._set(out, f"{here}.{field}" if here else field, value, quantity)

    def _cal_results(self, data: dict[str, Any], result: Any) -> None:
        entries = [
            e
            for e in result.findall(f"{_D}results/{_D}result")
            if not {"certissuer_test", "certissuer_testing_report"} & set(_ref_types(e))
        ]
        self._testing_rows(data, result)
        for entry, here, out in self._rows(data, "results", entries):
            name = entry.find(_D + "name")
            if name is not None and _content_text(name):
                self._set(out, f"{here}.quantity", _content_text(name), name)
            stage = [s for s, t in STAGE_REFTYPE.items() if t in _ref_types(entry)]
            if stage:
                self._set(out, f"{here}.stage", stage[0], entry)
            found = self._list(entry, here)
            if found is None:
                continue
            data_list, quantities = found
            names = {
                "basic_nominalValue": "nominal",
                "basic_measuredValue": "measured",
                "basic_measurementError": "error",
                "certissuer_resolution": "resolution",
            }
            dsi_units = self._values(quantities, here, names, out)
            extras = [
                q
                for q in data_list.findall(_D + "quantity")
                if _ref_types(q) == ["certissuer_extra"]
            ]
            if extras:
                extra: dict[str, str] = {}
                self._set(out, f"{here}.extra", extra, extras[0])
                for quantity in extras:
                    name = _content_text(quantity.find(_D + "name")) or ""
                    value = _content_text(quantity.find(_D + "noQuantity")) or ""
                    extra[name] = value
            freedom = quantities.get("certissuer_degreesOfFreedom")  # a count: unit \one
            if freedom is not None:
                real = self._real(freedom, f"{here}.degrees_of_freedom")
                if real is not None:
                    self._set(out, f"{here}.degrees_of_freedom", real[0], freedom)
            measured = quantities.get("basic_measuredValue")
            if measured is None:
                self.doc._problem(
                    data_list.sourceline,
                    f"{here}.measured",
                    "missing (required): a quantity with refType basic_measuredValue",
                )
            else:
                unc = measured.find(f"{_S}real/{_S}expandedUnc")
                value = "uncertainty"
                if unc is None:  # DCC 3.3.0 (D-SI 2.2): si:expandedUnc is deprecated
                    unc = measured.find(
                        f"{_S}real/{_S}measurementUncertaintyUnivariate/{_S}expandedMU"
                    )
                    value = "valueExpandedMU"
                apart = quantities.get("certissuer_expandedUncertainty")
                if unc is None and apart is not None:
                    # U and k without a probability: a result stored before issue 16 with
                    # k ≠ 2 (the model accepts it only when reading what was issued).
                    for ref_type, name in (
                        ("certissuer_expandedUncertainty", "uncertainty"),
                        ("certissuer_coverageFactor", "coverage_factor"),
                    ):
                        quantity = quantities.get(ref_type)
                        real = None if quantity is None else self._real(quantity, f"{here}.{name}")
                        if real is not None:
                            self._set(out, f"{here}.{name}", real[0], quantity)
                elif unc is None:
                    self.doc._problem(
                        measured.sourceline,
                        f"{here}.uncertainty",
                        "missing (required): the expanded uncertainty (si:expandedUnc or "
                        "si:expandedMU)",
                    )
                else:
                    self._set(
                        out,
                        f"{here}.uncertainty",
                        (unc.findtext(_S + value) or "").strip(),
                        unc,
                    )
                    self._set(
                        out,
                        f"{here}.coverage_factor",
                        (unc.findtext(_S + "coverageFactor") or "").strip(),
                        unc,
                    )
                    probability = (unc.findtext(_S + "coverageProbability") or "").strip()
                    if probability:  # 0.95 with k = 2 is the default: the model drops it
                        self._set(out, f"{here}.coverage_probability", probability, unc)
            self._unit(data_list, out, here, dsi_units)

    def _conformity_spec(self, statement: Any, out: dict[str, Any]) -> None:
        """The specification of a computed conformity: its MPE and the MPE's own unit."""
        for quantity in statement.findall(f"{_D}data/{_D}quantity"):
            types = _ref_types(quantity)
            if "certissuer_mpe" in types:
                real = self._real(quantity, "conformity.mpe")
                if real is not None:
                    self._set(out, "conformity.mpe", real[0], quantity)
            elif "certissuer_mpeUnit" in types:
                symbol = _content_text(quantity.find(_D + "noQuantity")) or ""
                self._set(out, "conformity.mpe_unit", symbol, quantity)

    def _own_units(
        self,
        quantities: Mapping[str, Any],
        here: str,
        names: Mapping[str, str],
        out: dict[str, Any],
    ) -> dict[str, str]:
        """Read the scale interval and MPE given in a unit of their own (issue 16); return the
        other names, whose values share the list's unit."""
        rest = dict(names)
        for value_type, (unit_type, unit_field) in _OWN_UNITS.items():
            named = quantities.get(unit_type)
            if named is None or value_type not in rest:
                continue
            symbol = _content_text(named.find(_D + "noQuantity")) or ""
            self._set(out, f"{here}.{unit_field}", symbol, named)
            got = self._values(quantities, here, {value_type: rest.pop(value_type)}, out)
            expected = dsi_unit("%" if symbol in RELATIVE_MPE_UNITS else symbol)
            if got and got != {expected}:
                self.doc._problem(
                    named.sourceline,
                    f"{here}.{unit_field}",
                    f"the unit '{symbol}' does not match the D-SI unit {', '.join(sorted(got))}",
                )
        return rest

    def _ver_results(self, data: dict[str, Any], result: Any) -> None:
        lists: dict[str, list[dict[str, Any]]] = {key: [] for key, _ in _VER_LISTS.values()}
        for entry in result.findall(f"{_D}results/{_D}result"):
            types = _ref_types(entry)
            ref_type = next((t for t in _VER_LISTS if t in types), None)
            if ref_type is None:
                self.doc._problem(
                    entry.sourceline,
                    None,
                    "a result that is neither a range (refType certissuer_range) nor a check "
                    "point (refType certissuer_check)",
                )
                continue
            key, names = _VER_LISTS[ref_type]
            rows = lists[key]
            if not rows:
                self._set(data, key, rows, entry)
            here, out = self._row(rows, key, entry)
            found = self._list(entry, here)
            if found is None:
                continue
            data_list, quantities = found
            names = self._own_units(quantities, here, names, out)
            dsi_units = self._values(quantities, here, names, out)
            accuracy = quantities.get("certissuer_accuracyClass")
            if key == "ranges" and accuracy is not None:
                text = _content_text(accuracy.find(_D + "noQuantity"))
                self._set(out, f"{here}.accuracy_class", text or "", accuracy)
            self._unit(data_list, out, here, dsi_units)
