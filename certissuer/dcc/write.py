"""Model → DCC XML (3.1.2, or 3.3.0 when asked), validated against the official schema of that
version before it leaves.

A certificate of either kind maps to one DCC document: administrative data (software, core data
with the certificate number and the lab's reference, the item, the lab, the responsible persons,
the customer or owner, statements), and one measurement result with the method, the reference
standards, the environmental conditions and the results as D-SI quantities. Invalid output is a
bug and is never written. `problems` says up front, at intake, what a certificate holds that no
valid DCC could.

>>> writer = DccWriter.from_settings(settings)  # doctest: +SKIP
>>> pdf_with_dcc = writer.embed(pdf, cert, number="HC-2026-000001")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, assert_never

from lxml import etree

from certissuer._vn import file_stem
from certissuer.config import Settings
from certissuer.dcc.pdf import embed
from certissuer.dcc.schema import DCC_PREFIX as _D
from certissuer.dcc.schema import (
    KIND_REFTYPE,
    NSMAP,
    ROOT_TAG,
    SCHEMA_HINT,
    SCHEMA_VERSION,
    STAGE_REFTYPE,
    DccError,
    Loc,
    Schema,
    check_write_version,
    find_schema_dir,
    load_schema,
)
from certissuer.dcc.schema import SI_PREFIX as _S
from certissuer.dcc.units import UNIT_HINT, dsi_unit, unit_symbol
from certissuer.errors import ConfigError
from certissuer.model import (
    PASS_CONCLUSION,
    RELATIVE_MPE_UNITS,
    AnyCertificate,
    CalibrationCertificate,
    CheckPoint,
    Conditions,
    Instrument,
    Measurement,
    MetrologicalRange,
    Party,
    Signatory,
    TestingReport,
    Verdict,
    VerificationCertificate,
    parse_certificate,
)

if TYPE_CHECKING:
    from certissuer.ledger import CertificateEntry

__all__ = ["DccWriter", "export_entry", "in_profile_scope", "problems", "to_xml"]

_logger = logging.getLogger(__name__)


_K_PATTERN: Final = re.compile(r"\+?(([1-9]\d*\.\d*)|([1-9]\d*))")
"""si:kValueType: a coverage factor of at least 1, written without an exponent."""
_XML_BAD_CHARS: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
"""Characters XML 1.0 cannot hold (control characters other than tab, LF and CR)."""


def problems(cert: AnyCertificate) -> list[tuple[Loc, str]]:
    """What in `cert` cannot go into a valid DCC, as ``(location, problem)`` pairs.

    The intake reports these with the file, row and field, so a certificate that would fail at
    export is refused when it is read. Checks: every unit has a D-SI form (`dsi_unit`), every
    coverage factor is at least 1 (the D-SI schema allows no less), and no text holds a
    control character. `location` is a pydantic-style path such as ``("results", 2, "unit")``.
    """
    found: list[tuple[Loc, str]] = []
    lists: list[tuple[str, Iterable[Any]]] = []
    if isinstance(cert, CalibrationCertificate):
        lists.append(("results", cert.results))
    else:
        lists += [("ranges", cert.ranges), ("checks", cert.checks)]
    for name, entries in lists:
        for index, entry in enumerate(entries):
            if dsi_unit(entry.unit) is None:
                found.append(
                    (
                        (name, index, "unit"),
                        f"'{entry.unit}' has no D-SI form, so it cannot go into the "
                        "machine-readable certificate (DCC)",
                    )
                )
            if isinstance(entry, Measurement) and not _K_PATTERN.fullmatch(
                str(entry.coverage_factor)
            ):
                found.append(
                    (
                        (name, index, "coverage_factor"),
                        f"expected a coverage factor of at least 1 written without an exponent "
                        f"(DCC / D-SI), got '{entry.coverage_factor}'",
                    )
                )
    found += [
        (loc, "contains a control character, which XML (and so the DCC) cannot hold")
        for loc, value in _strings(cert.model_dump(), ())
        if _XML_BAD_CHARS.search(value)
    ]
    return found


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*loc, index))


_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    "ref": ("Số tham chiếu của phòng thí nghiệm", "Laboratory reference"),
    "serial": ("Số", "Serial No."),
    "stamp": ("Số tem kiểm định", "Verification stamp No."),
    "certificate": ("Số giấy chứng nhận", "Certificate No."),
    "cal_results": ("Kết quả hiệu chuẩn", "Calibration results"),
    "ver_results": ("Kết quả kiểm định", "Verification results"),
    "range": ("Phạm vi đo", "Measuring range"),
    "check": ("Điểm kiểm tra", "Check point"),
    "temperature": ("Nhiệt độ", "Temperature"),
    "humidity": ("Độ ẩm tương đối", "Relative humidity"),
    "place_cal": ("Địa điểm hiệu chuẩn", "Place of calibration"),
    "place_use": ("Địa điểm sử dụng", "Place of use"),
    "valid_until": ("Có giá trị đến", "Valid until"),
    "mode": ("Chế độ kiểm định", "Verification mode"),
    "pass": PASS_CONCLUSION,
}


def _software_release() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certissuer")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


_RELEASE: Final = _software_release()


def _sub(parent: Any, tag: str, text: str | None = None, ref_type: str | None = None) -> Any:
    el = etree.SubElement(parent, _D + tag)
    if text is not None:
        el.text = text
    if ref_type:
        el.set("refType", ref_type)
    return el


def _text(parent: Any, tag: str, text: str, ref_type: str | None = None) -> Any:
    """A dcc:textType element with one content (our texts carry both languages already)."""
    el = _sub(parent, tag, ref_type=ref_type)
    _sub(el, "content", text)
    return el


def _label(parent: Any, tag: str, key: str) -> Any:
    """A dcc:textType element with the fixed Vietnamese and English wording of `key`."""
    el = _sub(parent, tag)
    vi, en = _LABELS[key]
    _sub(el, "content", vi).set("lang", "vi")
    _sub(el, "content", en).set("lang", "en")
    return el


def _decimal(value: Decimal) -> str:
    # str() of a Decimal keeps every digit and the exponent, and Decimal(str(d)) gives back d
    # exactly: what a round trip needs. Its forms ("0.10", "1E-8") all fit si:decimalType.
    return str(value)


def _real(
    parent: Any,
    ref_type: str,
    value: Decimal,
    dsi: str,
    *,
    uncertainty: Decimal | None = None,
    k: Decimal | None = None,
    p: Decimal | None = None,
    version: str = SCHEMA_VERSION,
) -> Any:
    quantity = _sub(parent, "quantity", ref_type=ref_type)
    real = etree.SubElement(quantity, _S + "real")
    etree.SubElement(real, _S + "value").text = _decimal(value)
    etree.SubElement(real, _S + "unit").text = dsi
    if uncertainty is not None and k is not None and p is not None:
        # p is the result's own (Measurement.probability): stated, or 0.95 for k = 2, the
        # "approximately 95 %" the certificate prints.
        if version == SCHEMA_VERSION:
            unc = etree.SubElement(real, _S + "expandedUnc")
            etree.SubElement(unc, _S + "uncertainty").text = _decimal(uncertainty)
        else:  # D-SI 2.2 (DCC 3.3.0) deprecates si:expandedUnc for this form
            univariate = etree.SubElement(real, _S + "measurementUncertaintyUnivariate")
            unc = etree.SubElement(univariate, _S + "expandedMU")
            etree.SubElement(unc, _S + "valueExpandedMU").text = _decimal(uncertainty)
        etree.SubElement(unc, _S + "coverageFactor").text = _decimal(k)
        etree.SubElement(unc, _S + "coverageProbability").text = _decimal(p)
        etree.SubElement(unc, _S + "distribution").text = "normal"
    return quantity


def _unit_for(symbol: str) -> str:
    dsi = dsi_unit(symbol)
    if dsi is None:  # the intake refuses these (problems()); reaching here is a bug
        raise DccError(f"unit '{symbol}' has no D-SI form", hint=UNIT_HINT)
    return dsi


def _list_metadata(data_list: Any, symbol: str, conformity: str | None = None) -> None:
    """The printed unit symbol (when D-SI maps back to another one) and a check's verdict."""
    entries: list[tuple[str, str, str]] = []
    if unit_symbol(_unit_for(symbol)) != symbol:
        entries.append(("certissuer_unitSymbol", "nonSIUnit", symbol))
    if conformity is not None:
        entries.append(("basic_conformity", "conformity", conformity))
    if not entries:
        return
    meta = _sub(data_list, "measurementMetaData")
    for ref_type, tag, text in entries:
        _sub(_sub(meta, "metaData", ref_type=ref_type), tag, text)


def _identification(parent: Any, issuer: str, value: str, ref_type: str, label: str) -> None:
    ident = _sub(parent, "identification", ref_type=ref_type)
    _sub(ident, "issuer", issuer)
    _sub(ident, "value", value)
    _label(ident, "name", label)


def _statement(parent: Any, ref_type: str) -> Any:
    return _sub(parent, "statement", ref_type=ref_type)


def _e_mail(contact: Any, version: str) -> None:
    # DCC 3.1.2 requires an e-mail element (certissuer knows no address: it is empty); 3.3.0
    # makes it optional and refuses it empty.
    if version == SCHEMA_VERSION:
        _sub(contact, "eMail", "")


def _contact(parent: Any, tag: str, party: Party, version: str) -> None:
    """A dcc:contactType: the schema requires a location (and in 3.1.2 an e-mail element)."""
    contact = _sub(parent, tag)
    _text(contact, "name", party.name)
    _e_mail(contact, version)
    further = _sub(_sub(contact, "location"), "further")
    if party.address:
        _sub(further, "content", party.address)


def _item(adm: Any, instrument: Instrument, stamp: str) -> None:
    item = _sub(_sub(adm, "items"), "item")
    _text(item, "name", instrument.name)
    if instrument.year is not None or instrument.condition:
        description = _sub(item, "description")
        if instrument.year is not None:
            _sub(description, "content", str(instrument.year), "certissuer_yearOfManufacture")
        if instrument.condition:
            _sub(description, "content", instrument.condition, "certissuer_condition")
    _text(_sub(item, "manufacturer"), "name", instrument.manufacturer)
    if instrument.model:
        _sub(item, "model", instrument.model)
    idents = _sub(item, "identifications")
    _identification(idents, "manufacturer", instrument.serial, "certissuer_serial", "serial")
    if stamp:
        _identification(idents, "calibrationLaboratory", stamp, "certissuer_stampNumber", "stamp")


def _lab(adm: Any, settings: Settings, accredited: bool, version: str) -> None:
    lab = _sub(adm, "calibrationLaboratory")
    # The accreditation number only where the PDF carries the accreditation mark (issue 16):
    # a calibration within the accredited scope; otherwise the lab's own code.
    code = settings.lab_accreditation if accredited and settings.lab_accreditation else ""
    _sub(lab, "calibrationLaboratoryCode", code or settings.lab_code)
    contact = _sub(lab, "contact")
    name = _sub(contact, "name")
    _sub(name, "content", settings.lab_name_vi).set("lang", "vi")
    _sub(name, "content", settings.lab_name_en).set("lang", "en")
    _e_mail(contact, version)
    location = _sub(contact, "location")
    if settings.lab_place:
        _sub(location, "city", settings.lab_place)
    _sub(location, "countryCode", "VN")
    if settings.lab_address_vi or settings.lab_address_en:
        further = _sub(location, "further")
        for lang, text in (("vi", settings.lab_address_vi), ("en", settings.lab_address_en)):
            if text:
                _sub(further, "content", text).set("lang", lang)


def _persons(adm: Any, persons: Iterable[tuple[str, Signatory | None, bool]]) -> None:
    resp = _sub(adm, "respPersons")
    for role, person, main in persons:
        if person is None:
            continue
        entry = _sub(resp, "respPerson")
        _text(_sub(entry, "person"), "name", person.name)
        if person.title:
            _sub(_sub(entry, "description"), "content", person.title)
        _sub(entry, "role", role)
        if main:
            _sub(entry, "mainSigner", "true")


def _build(
    cert: AnyCertificate, number: str, settings: Settings, accredited: bool, version: str
) -> Any:
    # The document is the same in 3.1.2 and 3.3.0 but for the version, the form of the
    # expanded uncertainty (D-SI 2.2's si:expandedMU in 3.3.0) and the empty e-mail elements
    # 3.1.2 requires and 3.3.0 refuses; 3.3.0 otherwise only adds optional elements.
    cal = isinstance(cert, CalibrationCertificate)
    root = etree.Element(ROOT_TAG, nsmap=NSMAP)
    root.set("schemaVersion", version)
    adm = _sub(root, "administrativeData")
    software = _sub(_sub(adm, "dccSoftware"), "software")
    _text(software, "name", "certissuer")
    _sub(software, "release", _RELEASE)
    _sub(software, "type", "application")

    core = _sub(adm, "coreData")
    _sub(core, "countryCodeISO3166_1", "VN")
    _sub(core, "usedLangCodeISO639_1", "vi")
    _sub(core, "usedLangCodeISO639_1", "en")
    _sub(core, "mandatoryLangCodeISO639_1", "vi")
    _sub(core, "uniqueIdentifier", number)
    idents = _sub(core, "identifications")
    _identification(idents, "calibrationLaboratory", cert.ref, "certissuer_ref", "ref")
    if isinstance(cert, CalibrationCertificate):
        _sub(core, "receiptDate", cert.received.isoformat())
        worked = cert.calibrated
    else:
        worked = cert.verification_date
    _sub(core, "beginPerformanceDate", worked.isoformat())
    _sub(core, "endPerformanceDate", worked.isoformat())
    # NOTE: the enumeration has no free text; the place itself is a statement below.
    _sub(core, "performanceLocation", "laboratory" if cal else "customer")

    if isinstance(cert, CalibrationCertificate):
        _item(adm, cert.item, "")
    else:
        _item(adm, cert.instrument, cert.stamp_number)
    # A verification certificate carries the designation decision, never the VILAS number.
    _lab(adm, settings, accredited and isinstance(cert, CalibrationCertificate), version)
    if isinstance(cert, CalibrationCertificate):
        _persons(
            adm,
            [
                ("performed_by", cert.performed_by, False),
                ("checked_by", cert.checked_by, False),
                ("signatory", cert.signatory, True),
            ],
        )
        _contact(adm, "customer", cert.customer, version)
    else:
        _persons(adm, [("verifier", cert.verifier, False), ("head", cert.head, True)])
        _contact(adm, "customer", cert.owner, version)
    _statements(_sub(adm, "statements"), cert)

    result = _sub(_sub(root, "measurementResults"), "measurementResult")
    result.set("refType", KIND_REFTYPE[cert.kind.value])
    _label(result, "name", "cal_results" if cal else "ver_results")
    _text(
        _sub(_sub(result, "usedMethods"), "usedMethod", ref_type="certissuer_method"),
        "name",
        cert.method,
    )
    if isinstance(cert, CalibrationCertificate):
        _standards(result, cert)
        _conditions(result, cert.conditions)
        results = _sub(result, "results")
        _cal_results(results, cert, version)
        if isinstance(cert, TestingReport):
            testing_rows(results, cert)
    else:
        _ver_results(_sub(result, "results"), cert)
    return root


def _statements(parent: Any, cert: AnyCertificate) -> None:
    place = _statement(parent, "certissuer_place")
    cal = isinstance(cert, CalibrationCertificate)
    _label(place, "declaration", "place_cal" if cal else "place_use")
    text = (
        cert.place_of_calibration if isinstance(cert, CalibrationCertificate) else cert.place_of_use
    )
    _sub(_sub(_sub(place, "location"), "further"), "content", text)
    if isinstance(cert, VerificationCertificate):
        mode = _statement(parent, "certissuer_verificationMode")
        _sub(mode, "convention", cert.mode.value)
        _label(mode, "declaration", "mode")
        verdict = _statement(parent, "basic_conformity")
        _sub(verdict, "norm", cert.method)
        _label(verdict, "declaration", "pass")
        _sub(verdict, "conformity", _status(cert.verdict, within=not _beyond(cert)))
    elif cert.conformity is not None:
        verdict = _statement(parent, "basic_conformity")
        _sub(verdict, "convention", cert.conformity.decision_rule)
        if cert.conformity.statement or cert.conformity.mpe is None:
            _sub(_sub(verdict, "declaration"), "content", cert.conformity.statement)
        _conformity_spec(verdict, cert)
    if cert.valid_until is not None:
        valid = _statement(parent, "certissuer_validUntil")
        _label(valid, "declaration", "valid_until")
        _sub(valid, "date", cert.valid_until.isoformat())
    if isinstance(cert, CalibrationCertificate) and cert.deviations:
        _sub(
            _sub(_statement(parent, "certissuer_deviations"), "declaration"),
            "content",
            cert.deviations,
        )
    if cert.replaces is not None:  # an amended certificate (ISO/IEC 17025 §7.8.8)
        replaces = _statement(parent, "certissuer_replaces")
        _sub(replaces, "reference", cert.replaces.number)
        _sub(_sub(replaces, "declaration"), "content", cert.replaces.reason)
    if cert.language_note:
        note = _statement(parent, "certissuer_languageNote")
        _sub(_sub(note, "declaration"), "content", cert.language_note)
    if isinstance(cert, CalibrationCertificate) and cert.external_provider:
        # ISO/IEC 17025 §7.8.2.1 p: results from an external provider
        external = _statement(parent, "certissuer_externalProvider")
        _sub(_sub(external, "declaration"), "content", cert.external_provider)
    if isinstance(cert, CalibrationCertificate) and cert.customer_supplied:
        # §7.8.2.2: the fields the customer supplied, space-separated field names
        supplied = _statement(parent, "certissuer_customerSupplied")
        _sub(_sub(supplied, "declaration"), "content", " ".join(cert.customer_supplied))
    if isinstance(cert, CalibrationCertificate) and cert.source_notes:
        # Issue 21: what a DCC from elsewhere gave beyond the certificate's fields, one content
        # per line, so that import → issue → export keeps every value read.
        notes = _sub(_statement(parent, "certissuer_sourceNotes"), "declaration")
        for line in cert.source_notes:
            _sub(notes, "content", line)
    if isinstance(cert, CalibrationCertificate):
        # Issue 21: the headings of the results' extra columns, one statement each: the name
        # (the key of each row's values) and its Vietnamese and English headings where given.
        for column in cert.extra_columns:
            heading = _sub(_statement(parent, "certissuer_extraColumn"), "declaration")
            _sub(heading, "content", column.name)
            for lang, text in (("vi", column.vi), ("en", column.en)):
                if text:
                    _sub(heading, "content", text).set("lang", lang)


def _standards(result: Any, cert: CalibrationCertificate) -> None:
    equipment = _sub(result, "measuringEquipments")
    for standard in cert.standards:
        item = _sub(equipment, "measuringEquipment", ref_type="certissuer_referenceStandard")
        _text(item, "name", standard.name)
        due = standard.calibration_due.isoformat()
        description = _sub(item, "description")
        _sub(description, "content", due, "certissuer_calibrationDue")
        if standard.traceable_to:
            _sub(description, "content", standard.traceable_to, "certissuer_traceableTo")
        if standard.calibrated_by:
            _sub(description, "content", standard.calibrated_by, "certissuer_calibratedBy")
        idents = _sub(item, "identifications")
        if standard.serial:
            _identification(idents, "manufacturer", standard.serial, "certissuer_serial", "serial")
        _identification(
            idents,
            "other",
            standard.certificate_number,
            "certissuer_certificateNumber",
            "certificate",
        )


def _conditions(result: Any, conditions: Conditions) -> None:
    rows = [
        (
            "basic_temperature",
            "temperature",
            r"\degreecelsius",
            conditions.temperature,
            conditions.temperature_uncertainty,
        ),
        (
            "basic_humidityRelative",
            "humidity",
            r"\percent",
            conditions.humidity,
            conditions.humidity_uncertainty,
        ),
    ]
    present = [row for row in rows if row[3] is not None or row[4] is not None]
    if not present:
        return
    parent = _sub(result, "influenceConditions")
    for ref_type, key, dsi, value, uncertainty in present:
        condition = _sub(parent, "influenceCondition", ref_type=ref_type)
        _label(condition, "name", key)
        data = _sub(condition, "data")
        if value is not None:
            _real(data, ref_type, value, dsi)
        if uncertainty is not None:
            _real(data, "certissuer_uncertainty", uncertainty, dsi)


def _result_list(
    results: Any, ref_type: str, *, text: str | None = None, label: str | None = None
) -> Any:
    """A dcc:result of `ref_type`, named by `text` or by the wording of `label`; its dcc:list.

    The name comes first: the schema orders a result's name before its data.
    """
    result = _sub(results, "result", ref_type=ref_type)
    if label is not None:
        _label(result, "name", label)
    else:
        _text(result, "name", text or "")
    return _sub(_sub(result, "data"), "list")


def _cal_results(results: Any, cert: CalibrationCertificate, version: str) -> None:
    for m in cert.results:
        ref_types = " ".join(filter(None, ["certissuer_result", STAGE_REFTYPE.get(m.stage)]))
        data_list = _result_list(results, ref_types, text=m.quantity)
        dsi = _unit_for(m.unit)
        if m.nominal is not None:
            _real(data_list, "basic_nominalValue", m.nominal, dsi)
        _real(
            data_list,
            "basic_measuredValue",
            m.measured,
            dsi,
            uncertainty=m.uncertainty,
            k=m.coverage_factor,
            p=m.probability,
            version=version,
        )
        if m.error is not None:
            _real(data_list, "basic_measurementError", m.error, dsi)
        if m.resolution is not None:  # the display step the indicated value was read at
            _real(data_list, "certissuer_resolution", m.resolution, dsi)
        if m.degrees_of_freedom is not None:  # ν_eff, which gave p (GUM Table G.2)
            _real(data_list, "certissuer_degreesOfFreedom", Decimal(m.degrees_of_freedom), "\\one")
        if m.probability is None:
            # Stored before issue 16 with k ≠ 2 and no stated p: si:expandedUnc needs a
            # probability the lab never stated, so U and k are quantities of their own.
            _real(data_list, "certissuer_expandedUncertainty", m.uncertainty, dsi)
            _real(data_list, "certissuer_coverageFactor", m.coverage_factor, "\\one")
        for name, value in m.extra.items():  # issue 21: printed as given, so kept as text
            extra = _sub(data_list, "quantity", ref_type="certissuer_extra")
            _text(extra, "name", name)
            _text(extra, "noQuantity", value)
        _list_metadata(data_list, m.unit)


TEST_ROW_FIELDS: Final = (
    "method", "result", "loq", "unit", "uncertainty", "coverage_factor", "limit_min",
    "limit_max", "requirement", "requirement_source", "conformity", "accredited",
)  # fmt: skip
"""The fields of a testing report's row (issue 22) a DCC carries, each as a text quantity."""
TESTING_REPORT_FIELDS: Final = ("decision_rule", "tested_from", "sampling", "sampling_note")
"""The report-wide fields of a testing report (issue 22) a DCC carries."""


def testing_rows(results: Any, cert: TestingReport) -> None:
    """Add a testing report's rows (issue 22) to dcc:results: one dcc:result of refType
    ``certissuer_test`` per row, named by its parameter, each field a text quantity of refType
    ``certissuer_test_<field>`` (the result may be text, so every field is kept as written);
    then one ``certissuer_testing_report`` result holding the report-wide fields. Read back by
    `certissuer.dcc.read` field for field."""
    for row in cert.tests:
        data = row.model_dump(mode="json")
        data_list = _result_list(results, "certissuer_test", text=row.parameter)
        for name in TEST_ROW_FIELDS:
            if name in data:
                value = data[name]
                text = str(value).lower() if isinstance(value, bool) else str(value)
                _text_quantity(data_list, name, text)
    report = cert.model_dump(mode="json")
    given = [name for name in TESTING_REPORT_FIELDS if name in report]
    if given:
        data_list = _result_list(results, "certissuer_testing_report", text="testing report")
        for name in given:
            _text_quantity(data_list, name, str(report[name]))


def _text_quantity(data_list: Any, name: str, text: str) -> None:
    quantity = _sub(data_list, "quantity", ref_type=f"certissuer_test_{name}")
    _text(quantity, "name", name)
    _text(quantity, "noQuantity", text)


def _ver_results(results: Any, cert: VerificationCertificate) -> None:
    for r in cert.ranges:
        data_list = _result_list(results, "certissuer_range", label="range")
        dsi = _unit_for(r.unit)
        _real(data_list, "certissuer_rangeMin", r.lower, dsi)
        _real(data_list, "certissuer_rangeMax", r.upper, dsi)
        if r.scale_interval is not None:
            _real(data_list, "certissuer_scaleInterval", r.scale_interval, _own_dsi(r, "scale"))
            _own_unit(data_list, "certissuer_scaleIntervalUnit", r.scale_interval_unit)
        if r.mpe is not None:
            _real(data_list, "certissuer_mpe", r.mpe, _own_dsi(r, "mpe"))
            _own_unit(data_list, "certissuer_mpeUnit", r.mpe_unit)
        if r.accuracy_class:
            quantity = _sub(data_list, "quantity", ref_type="certissuer_accuracyClass")
            _sub(_sub(quantity, "noQuantity"), "content", r.accuracy_class)
        _list_metadata(data_list, r.unit)
    for c in cert.checks:
        data_list = _result_list(results, "certissuer_check", label="check")
        dsi = _unit_for(c.unit)
        _real(data_list, "basic_nominalValue", c.nominal, dsi)
        _real(data_list, "basic_measurementError", c.error, dsi)
        _real(data_list, "certissuer_mpe", c.mpe, _own_dsi(c, "mpe"))
        _own_unit(data_list, "certissuer_mpeUnit", c.mpe_unit)
        if c.uncertainty is not None:
            _real(data_list, "certissuer_checkUncertainty", c.uncertainty, dsi)
        _list_metadata(
            data_list, c.unit, _status(c.verdict, within=abs(c.error) <= c.permitted_error)
        )


def _conformity_spec(statement: Any, cert: CalibrationCertificate) -> None:
    # A computed conformity (issue 16): its verdict and the specification it was computed from.
    spec, computed = cert.conformity, cert.conformity_verdict
    if spec is None or spec.mpe is None or computed is None:
        return
    # Indeterminate: is every judged error, the uncertainty aside, within the MPE?
    simple = spec.model_copy(update={"decision_rule": "simple"})
    judged = [m for m in cert.results if m.stage == "after"] or [
        m for m in cert.results if m.stage != "before"
    ]
    within = all(
        simple.judge(m.effective_error, m.nominal, m.uncertainty, m.unit) is Verdict.PASS
        for m in judged
        if m.effective_error is not None
    )
    _sub(statement, "conformity", _status(computed, within=within))
    data = _sub(statement, "data")
    relative = spec.mpe_unit in RELATIVE_MPE_UNITS
    _real(data, "certissuer_mpe", spec.mpe, _unit_for("%" if relative else cert.results[0].unit))
    _own_unit(data, "certissuer_mpeUnit", spec.mpe_unit)


def _status(verdict: Verdict, *, within: bool) -> str:
    """A verdict as DCC 3.1.2 states conformity (``stringConformityStatementStatusType``).

    Pass and fail are themselves. An indeterminate verdict (the error in the guard band,
    ILAC-G8:09/2019 §4.2.3) is never written as pass or fail: it is ``conditionalPass`` when
    the error itself is within the MPE and ``conditionalFail`` when it is beyond it, the DCC's
    words for a result the uncertainty keeps from deciding (`within`: |error| ≤ MPE).
    """
    match verdict:
        case Verdict.PASS:
            return "pass"
        case Verdict.FAIL:
            return "fail"
        case Verdict.INDETERMINATE:
            return "conditionalPass" if within else "conditionalFail"
        case _:
            assert_never(verdict)


def _beyond(cert: VerificationCertificate) -> bool:
    """True when some check's error, uncertainty aside, exceeds its MPE."""
    return any(abs(c.error) > c.permitted_error for c in cert.checks)


def _own_dsi(part: MetrologicalRange | CheckPoint, which: str) -> str:
    """The D-SI unit of a scale interval or MPE: its own unit's, a relative MPE's \\percent."""
    if which == "scale":
        assert isinstance(part, MetrologicalRange)
        return _unit_for(part.scale_interval_symbol)
    return _unit_for("%" if part.mpe_symbol in RELATIVE_MPE_UNITS else part.mpe_symbol)


def _own_unit(data_list: Any, ref_type: str, symbol: str) -> None:
    # A scale interval or MPE in a unit of its own ("L" on a L/min range, "% of volume"), named
    # beside its value: D-SI has no "% of volume", and the list's unit is the range's.
    if symbol:
        quantity = _sub(data_list, "quantity", ref_type=ref_type)
        _sub(_sub(quantity, "noQuantity"), "content", symbol)


def to_xml(
    cert: AnyCertificate,
    *,
    number: str,
    settings: Settings,
    schema: Schema,
    accredited: bool = True,
) -> bytes:
    """The DCC document of `cert`, as UTF-8 XML bytes, in the version of `schema` (3.1.2 or
    3.3.0, `WRITE_VERSIONS`) and validated against it.

    `number` is the certificate number (the DCC's unique identifier); `settings` gives the lab
    (name, address, place, accreditation). `accredited` False (work outside the accredited
    scope, printed without the accreditation mark) names the lab by its code instead of its
    accreditation number, as does a verification certificate. The output depends only on
    these, so exporting the
    same certificate again with the same lab profile gives the same bytes. Raises `DccError`
    when the document breaks the schema (a bug: it is never returned) or holds what XML cannot.
    """
    check_write_version(schema.version)
    try:
        root = _build(cert, number, settings, accredited, schema.version)
    except ValueError as exc:  # lxml refuses control characters; problems() catches them first
        raise DccError(f"{number}: the certificate data cannot go into XML: {exc}") from exc
    errors = schema.errors(root)
    if errors:
        _logger.error("DCC of %s is invalid: %s", number, errors)
        first = "; ".join(f"line {line}: {message}" for line, message in errors[:3])
        raise DccError(
            f"{number}: the DCC document is not valid against {schema.file_name} ({first})",
            hint="this is a bug in certissuer: please report it with the input record",
        )
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


class DccWriter:
    """Builds, validates and embeds the DCC of each certificate; built once per `Issuer`."""

    def __init__(self, settings: Settings, schema: Schema) -> None:
        self.settings = settings
        self.schema = schema

    def __repr__(self) -> str:
        return f"DccWriter(schema={self.schema!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings, env: Mapping[str, str] | None = None
    ) -> DccWriter | None:
        """The writer `settings` ask for, or None when no DCC is to be embedded.

        ``[dcc] embed``: true embeds (and raises `ConfigError` without the schemas), false
        never embeds, unset embeds when the schemas are found (`find_schema_dir`).
        """
        if settings.dcc_embed is False:
            return None
        folder = find_schema_dir(settings, env)
        if folder is None:
            if settings.dcc_embed:
                raise ConfigError(
                    "[dcc] embed is true, but the DCC schemas were not found",
                    hint=SCHEMA_HINT,
                )
            _logger.debug("no DCC schemas found: certificates get no DCC")
            return None
        return cls(settings, Schema.load(folder))

    def xml(self, cert: AnyCertificate, *, number: str, accredited: bool = True) -> bytes:
        """The validated DCC document of `cert` issued as `number` (see `to_xml`)."""
        return to_xml(
            cert, number=number, settings=self.settings, schema=self.schema, accredited=accredited
        )

    def embed(
        self, pdf: bytes, cert: AnyCertificate, *, number: str, accredited: bool = True
    ) -> bytes:
        """`pdf` with the DCC of `cert` attached as ``NUMBER.dcc.xml`` (see `embed`);
        `accredited` as the PDF prints it (`to_xml`)."""
        xml = self.xml(cert, number=number, accredited=accredited)
        return embed(pdf, xml, filename=f"{file_stem(number) or 'dcc'}.dcc.xml")


def export_entry(
    entry: CertificateEntry,
    settings: Settings,
    *,
    accredited: bool | None = None,
    version: str = SCHEMA_VERSION,
) -> bytes:
    """The DCC of an issued certificate, rebuilt from the data its ledger `entry` holds, in
    schema `version` (3.1.2, the version embedded in the PDF, or 3.3.0; ``newest`` names
    3.3.0; another raises `DccError` in one line).

    The same lab profile as at issue gives the same bytes as the DCC inside the signed PDF
    (which `extract` returns as signed). `accredited` says whether the PDF carries the
    accreditation mark; None decides as issuing does without a register: a calibration whose
    every result lies in a ``[lab] accredited_scope`` line (`in_profile_scope`). Raises
    `ConfigError` without the schemas of `version` and `DccError` for a pending entry.
    """
    version = check_write_version(version)
    if entry.is_pending:
        raise DccError(f"{entry.number} is reserved but not issued yet: it has no DCC")
    if version == SCHEMA_VERSION:
        folder = find_schema_dir(settings)
        if folder is None:
            raise ConfigError(
                "the DCC schemas were not found",
                hint=SCHEMA_HINT,
            )
        schema = Schema.load(folder)
    else:
        schema = load_schema(version, settings)
    cert = parse_certificate(entry.data(), stored=True)
    if accredited is None:
        accredited = in_profile_scope(cert, settings)
    return to_xml(
        cert,
        number=entry.number,
        settings=settings,
        schema=schema,
        accredited=accredited,
    )


def in_profile_scope(cert: AnyCertificate, settings: Settings) -> bool:
    """True when `cert` is a calibration whose every result lies in one of the profile's
    ``[lab] accredited_scope`` lines (a test report: one of its rows is accredited), for a lab
    with an accreditation number: the work the accreditation mark (and number) may be printed
    on when no register holds the scope."""
    if not isinstance(cert, CalibrationCertificate) or not settings.lab_accreditation:
        return False
    if isinstance(cert, TestingReport):
        # Issue 22: a test report is judged by [lab] testing_scope, row by row, when it is
        # issued (rows outside are stored `accredited: false`), never by calibration lines.
        return bool(settings.lab_testing_scope and cert.tests) and any(
            row.accredited is not False for row in cert.tests
        )
    lines = settings.accredited_scope()
    return bool(lines) and all(
        any(
            line.covers(cert.item.name, m.unit, m.nominal if m.nominal is not None else m.measured)
            for line in lines
        )
        for m in cert.results
    )
