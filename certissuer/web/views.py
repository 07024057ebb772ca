"""The HTML page: what it shows of a certificate, the verdict's wording, templates, cache policy.

The page is bilingual, Vietnamese first, and needs no JavaScript. Its templates are
``templates/web`` (Jinja2, autoescaped, StrictUndefined); every value is escaped.

>>> pages = Pages(settings, Lab.of(settings, keys))  # doctest: +SKIP
>>> html = pages.render("index.html.j2", root="")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from certissuer._files import default_template_dir
from certissuer._vn import dmy, local_time
from certissuer.config import Settings
from certissuer.ledger import (
    FAILED_REVERIFICATION_EN,
    FAILED_REVERIFICATION_VI,
    CertificateEntry,
)
from certissuer.model import (
    CONFORMITY_WORDS,
    PASS_CONCLUSION,
    CalibrationCertificate,
    TestingReport,
    VerificationCertificate,
    VerificationMode,
    format_decimal,
    parse_certificate,
)
from certissuer.token import TokenPublicKey
from certissuer.verify import NOT_CONSULTED, Report, Verdict
from certissuer.web.middleware import Problem

__all__ = [
    "LEDGER_VERDICTS",
    "STYLESHEET_CACHE_CONTROL",
    "WITHHELD",
    "CertificateDetails",
    "Lab",
    "Pages",
    "ResultRow",
    "Row",
    "busy",
    "certificate_details",
    "headline",
    "local_time_text",
    "not_pdf",
    "tone",
    "web_template_dir",
]

_logger = logging.getLogger(__name__)

LEDGER_VERDICTS = frozenset(
    {
        Verdict.VALID,
        Verdict.REVOKED,
        Verdict.SUPERSEDED,
        Verdict.EXPIRED,
        Verdict.NO_LONGER_VALID,
        Verdict.AWAITING_APPROVAL,
    }
)
"""Verdicts reached only for a genuine certificate found in the ledger: its fields are shown."""

_MODE_VALUES = frozenset(mode.value for mode in VerificationMode)


def web_template_dir() -> Path:
    """The folder of the page's templates (``templates/web``, shipped with certissuer)."""
    return default_template_dir() / "web"


# -- what the page shows ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled line of the page: Vietnamese label, English label, value."""

    key: str
    """Stable name of the line (the page's element id is ``f-<key>``)."""
    label_vi: str
    label_en: str
    value: str


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One calibration result, as printed on the certificate."""

    nominal: str
    measured: str
    error: str
    uncertainty: str
    coverage_factor: str
    unit: str
    quantity: str = ""
    """The test parameter (chỉ tiêu thử nghiệm) a testing report's row names."""


@dataclass(frozen=True, slots=True)
class TestRow:
    """One row of a testing report (issue 22), as the report prints it."""

    __test__ = False

    parameter: str
    method: str
    result: str
    uncertainty: str
    """"U (k = …)", or empty."""
    unit: str
    requirement: str
    conformity_vi: str
    conformity_en: str
    accredited: bool = True
    """False: marked "chỉ tiêu chưa được công nhận / parameter not accredited"."""


@dataclass(frozen=True, slots=True)
class CertificateDetails:
    """What an inspector compares with the instrument, from the ledger entry and its data."""

    number: str
    kind: str
    instrument: str
    model: str
    serial: str
    owner: str
    place: str
    """Place of use (verification) or place of calibration."""
    work_date: date
    """Verification or calibration date."""
    issue_date: date
    pdf_sha256: str
    manufacturer: str = ""
    owner_address: str = ""
    stamp_number: str = ""
    method: str = ""
    mode: str = ""
    valid_until: date | None = None
    conclusion_vi: str = ""
    conclusion_en: str = ""
    results: tuple[ResultRow, ...] = ()
    tests: tuple[TestRow, ...] = ()
    """A testing report's rows (issue 22)."""
    decision_rule_vi: str = ""
    decision_rule_en: str = ""
    customer_hidden: bool = False
    """The calibration customer's name and address are withheld (``[web] show_customer``)."""

    @property
    def is_verification(self) -> bool:
        """True for a verification certificate (Mẫu 18.GCNKĐ) or a notice of failure."""
        return self.kind in ("verification", "failure")

    @property
    def common_unit(self) -> str:
        """The unit of every result, when they share one (a phone then needs no unit column)."""
        units = {r.unit for r in self.results}
        return units.pop() if len(units) == 1 else ""

    @property
    def common_k(self) -> str:
        """The coverage factor of every result, when they share one."""
        factors = {r.coverage_factor for r in self.results}
        return factors.pop() if len(factors) == 1 else ""

    @property
    def title(self) -> tuple[str, str]:
        """The form's title in Vietnamese and English (FORMS.md)."""
        if self.kind == "failure":
            return "THÔNG BÁO KẾT QUẢ KIỂM ĐỊNH KHÔNG ĐẠT", "NOTICE OF FAILED VERIFICATION"
        if self.is_verification:
            return "GIẤY CHỨNG NHẬN KIỂM ĐỊNH", "CERTIFICATE OF VERIFICATION"
        if self.kind == "testing":
            return "PHIẾU KẾT QUẢ THỬ NGHIỆM", "TEST REPORT"
        return "GIẤY CHỨNG NHẬN HIỆU CHUẨN", "CALIBRATION CERTIFICATE"

    def rows(self) -> list[Row]:
        """The labelled lines of the page, with the forms' wording (FORMS.md)."""
        ver = self.is_verification
        # A testing report (issue 22) words its lines as the report prints them.
        testing = {
            "Đối tượng hiệu chuẩn": ("Mẫu thử nghiệm", "Item tested"),
            "Địa điểm hiệu chuẩn": ("Địa điểm thử nghiệm", "Place of testing"),
            "Phương pháp hiệu chuẩn": ("Phương pháp thử", "Test method"),
            "Ngày hiệu chuẩn": ("Ngày thử nghiệm", "Date(s) of testing"),
        }

        def pick(verification: tuple[str, str], calibration: tuple[str, str]) -> tuple[str, str]:
            if ver:
                return verification
            if self.kind == "testing":
                return testing.get(calibration[0], calibration)
            return calibration

        owner = self.owner + (f", {self.owner_address}" if self.owner_address else "")
        if self.customer_hidden:
            owner = WITHHELD
        rows = [
            Row("number", "Số", "No.", self.number),
            Row("instrument", *pick(("Tên phương tiện đo", "Measuring instrument"),
                                    ("Đối tượng hiệu chuẩn", "Item calibrated")), self.instrument),
            Row("model", "Kiểu", "Type / Model", self.model or "—"),
            Row("serial", "Số", "Serial No.", self.serial),
            Row("manufacturer", "Cơ sở sản xuất", "Manufacturer", self.manufacturer or "—"),
            Row("owner", *pick(("Cơ sở sử dụng", "User"), ("Khách hàng", "Customer")), owner),
            Row("place", *pick(("Địa điểm sử dụng", "Place of use"),
                               ("Địa điểm hiệu chuẩn", "Place of calibration")), self.place),
        ]  # fmt: skip
        if ver:
            rows.append(
                Row("stamp", "Số tem kiểm định", "Verification stamp No.", self.stamp_number or "—")
            )
        if self.method:
            rows.append(Row("method", *pick(("Phương pháp thực hiện", "Method of verification"),
                                            ("Phương pháp hiệu chuẩn", "Calibration method")),
                            self.method))  # fmt: skip
        if self.mode in _MODE_VALUES:
            vi, en = VerificationMode(self.mode).words
            rows.append(Row("mode", "Chế độ kiểm định", "Verification mode", f"{vi} / {en}"))
        rows.append(Row("work-date", *pick(("Ngày kiểm định", "Date of verification"),
                                           ("Ngày hiệu chuẩn", "Date of calibration")),
                        dmy(self.work_date)))  # fmt: skip
        rows.append(Row("issue-date", "Ngày cấp", "Date of issue", dmy(self.issue_date)))
        if self.valid_until is not None:
            rows.append(Row("valid-until", "Có giá trị đến", "Valid until", dmy(self.valid_until)))
        if self.conclusion_vi:
            rows.append(Row("result", *pick(("Kết luận", "Conclusion"), ("Kết quả", "Results")),
                            self.conclusion_vi if self.conclusion_vi == self.conclusion_en
                            else f"{self.conclusion_vi} / {self.conclusion_en}"))  # fmt: skip
        return rows


WITHHELD = "Không công bố / Not published"
"""What the page shows in place of a withheld customer."""


def certificate_details(
    entry: CertificateEntry, *, show_customer: bool = True
) -> CertificateDetails:
    """The page's fields for `entry`, from its stored data (or its columns, if unparsable).

    With `show_customer` false (``[web] show_customer``), a calibration customer's name and
    address are withheld, and so is a place of calibration that names them (on-site work);
    a verified instrument's owner stays: the inspector compares it with the instrument.
    """
    details = _details(entry)
    if show_customer or details.is_verification:
        return details
    names = [s.casefold() for s in (details.owner, details.owner_address) if s.strip()]
    place = details.place
    if any(n in place.casefold() for n in names):
        place = WITHHELD
    return replace(details, owner="", owner_address="", place=place, customer_hidden=True)


def _details(entry: CertificateEntry) -> CertificateDetails:
    """Every field of `entry`, from its stored data (or its columns, if unparsable)."""
    base: dict[str, Any] = {
        "number": entry.number,
        "kind": entry.kind,
        "instrument": entry.instrument_name,
        "model": entry.instrument_model,
        "serial": entry.instrument_serial,
        "owner": entry.customer_name,
        "place": "",
        "work_date": entry.work_date,
        "issue_date": entry.issue_date,
        "valid_until": entry.valid_until,
        "pdf_sha256": entry.pdf_sha256 or "",
    }
    try:
        cert = parse_certificate(entry.data(), stored=True)
    except (ValidationError, ValueError) as exc:
        # Data written by another version of certissuer: show what the columns hold.
        _logger.warning("%s: stored data does not parse (%s); showing columns", entry.number, exc)
        return CertificateDetails(**base)
    if isinstance(cert, VerificationCertificate):
        instrument, party = cert.instrument, cert.owner
        extra: dict[str, Any] = {
            "place": cert.place_of_use,
            "stamp_number": cert.stamp_number,
            "mode": cert.mode.value,
            # Only an instrument that passes gets a certificate (FORMS.md, Mẫu 18.GCNKĐ).
            "conclusion_vi": PASS_CONCLUSION[0] if cert.passes else "",
            "conclusion_en": PASS_CONCLUSION[1] if cert.passes else "",
        }
    else:
        assert isinstance(cert, CalibrationCertificate)
        instrument, party = cert.item, cert.customer
        extra = {"place": cert.place_of_calibration, "results": _results(cert)}
        if cert.conformity is not None and cert.conformity_verdict is not None:
            # Computed from the results (a specification was given): the verdict's words,
            # then what the item was compared with, as the certificate prints them.
            vi, en = CONFORMITY_WORDS[cert.conformity_verdict]
            spec = f": {cert.conformity.statement}" if cert.conformity.statement else ""
            extra["conclusion_vi"], extra["conclusion_en"] = vi + spec, en + spec
        elif cert.conformity is not None:
            extra["conclusion_vi"] = extra["conclusion_en"] = cert.conformity.statement
        if isinstance(cert, TestingReport) and cert.tests:
            extra.update(_tests(cert))
    return CertificateDetails(
        **{
            **base,
            "instrument": instrument.name,
            "model": instrument.model,
            "serial": instrument.serial,
            "manufacturer": instrument.manufacturer,
            "owner": party.name,
            "owner_address": party.address,
            "method": cert.method,
            **extra,
        }
    )


def _results(cert: CalibrationCertificate) -> tuple[ResultRow, ...]:
    rows = []
    for m in cert.results:
        row = m.printed()  # as the certificate prints it
        power = str(row.power).replace("-", "\u2212")
        rows.append(
            ResultRow(
                nominal=row.nominal,
                measured=row.measured,
                error=row.error,
                uncertainty=row.uncertainty,
                coverage_factor=format_decimal(m.coverage_factor),
                unit=f"×10{power.translate(_SUPERSCRIPT)} {row.unit}" if row.power else row.unit,
                quantity=m.quantity,
            )
        )
    return tuple(rows)


def _tests(cert: TestingReport) -> dict[str, Any]:
    """A testing report's rows, decision rule and overall statement, as the report prints
    them."""
    rows = []
    for row, found in zip(cert.tests, cert.row_conformities, strict=True):
        u = f"{row.uncertainty} (k = {row.k})" if row.uncertainty is not None else ""
        source = f" ({row.requirement_source})" if row.requirement_source else ""
        rows.append(
            TestRow(
                parameter=row.parameter,
                method=row.method or cert.method,
                result=row.printed_result,
                uncertainty=u,
                unit=row.unit,
                requirement=(row.printed_requirement + source).strip(),
                conformity_vi=found.words[0],
                conformity_en=found.words[1],
                accredited=row.accredited is not False,
            )
        )
    extra: dict[str, Any] = {"tests": tuple(rows)}
    if cert.decision_rule_words is not None:
        extra["decision_rule_vi"], extra["decision_rule_en"] = cert.decision_rule_words
    if cert.overall_words is not None:
        extra["conclusion_vi"], extra["conclusion_en"] = cert.overall_words
    return extra


_SUPERSCRIPT = str.maketrans("0123456789\u2212", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def headline(report: Report) -> tuple[str, str]:
    """The verdict as the page states it, Vietnamese and English, in the forms' wording."""
    if report.verdict is Verdict.REVOKED and report.revocation_reason:
        reason = report.revocation_reason
        return f"ĐÃ THU HỒI (lý do {reason})", f"REVOKED (reason {reason})"
    if report.verdict is Verdict.SUPERSEDED and report.superseded_by:
        n = report.superseded_by
        return f"ĐÃ ĐƯỢC THAY THẾ bởi giấy chứng nhận số {n}", f"SUPERSEDED by certificate No. {n}"
    if report.verdict is Verdict.NO_LONGER_VALID:
        return (
            f"HẾT HIỆU LỰC ({FAILED_REVERIFICATION_VI})",
            f"NO LONGER VALID ({FAILED_REVERIFICATION_EN})",
        )
    return report.label_vi, report.label_en


def local_time_text(moment: datetime) -> str:
    """`moment` on Vietnam's clock as the page shows it: "03/12/2026 03:00 (UTC+7)"."""
    here = local_time(moment)
    return f"{dmy(here.date())} {here:%H:%M} (UTC+7)"


def tone(verdict: Verdict) -> str:
    """The page's colour for `verdict`: "ok", "warn" (genuine, not current), "unknown" (intact
    but not provable, or a genuine token whose ledger could not be checked: never shown as a
    forgery) or "bad"."""
    if verdict is Verdict.VALID or verdict is Verdict.GENUINE_REPORT:
        return "ok"
    if verdict is Verdict.TIME_NOT_PROVEN or verdict in NOT_CONSULTED:
        return "unknown"
    if verdict in LEDGER_VERDICTS:
        return "warn"
    return "bad"


@dataclass(frozen=True, slots=True)
class Lab:
    """Who answers: the lab's names, its page's domain and its token key fingerprints."""

    name_vi: str
    name_en: str
    domain: str
    fingerprints: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings, keys: list[TokenPublicKey]) -> Lab:
        """The lab of `settings`, answering with the token public `keys`."""
        parts = urlsplit(settings.token_url_base)
        domain = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return cls(
            settings.lab_name_vi,
            settings.lab_name_en,
            domain,
            tuple(k.fingerprint for k in keys),
        )


def _grouped(hexdigest: str) -> str:
    """``ab12cd34…`` as ``ab12 cd34 …``: easier to compare by eye."""
    return " ".join(hexdigest[i : i + 4] for i in range(0, len(hexdigest), 4))


STYLESHEET_CACHE_CONTROL = "public, max-age=86400"
"""The stylesheet may be cached for a day; every other answer is ``no-store``."""


class Pages:
    """The page's templates and stylesheet, rendered for one lab."""

    def __init__(self, settings: Settings, lab: Lab) -> None:
        self.settings = settings
        self.lab = lab
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(web_template_dir()),
            autoescape=True,  # every template, whatever its name: all values are escaped
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["grouped"] = _grouped
        self.env.filters["dmy"] = dmy
        self.env.filters["local_time"] = local_time_text
        self.css = (web_template_dir() / "web.css").read_bytes()

    def render(self, template: str, *, root: str, **context: Any) -> str:
        """`template` rendered with `context`; `root` is the relative path to the site's root."""
        return self.env.get_template(template).render(
            lab=self.lab, root=root, max_upload_mb=self._max_upload_mb(), **context
        )

    def page(self, template: str, *, root: str, status: int = 200, **context: Any) -> HTMLResponse:
        """`render` as an HTML response with `status`."""
        return HTMLResponse(self.render(template, root=root, **context), status_code=status)

    def verdict(
        self,
        report: Report,
        details: CertificateDetails | None,
        *,
        root: str,
        download: str | None = None,
        uploaded: bool = False,
        looked_up: bool = False,
    ) -> str:
        """The verdict page for `report`, in the forms' wording (`headline`) and colour (`tone`).

        `details` are the certificate's fields, shown only for a genuine certificate found in
        the ledger; `root` is the relative path to the site's root; `download` is the link to
        the signed PDF, if it may be downloaded; `uploaded` says the verdict is for a file
        the inspector sent (rather than a QR code); `looked_up` that it is for a lookup by
        number and serial number (the ledger's status only: no file or QR code was checked).
        """
        return self.render(
            "verdict.html.j2",
            root=root,
            report=report,
            headline=headline(report),
            tone=tone(report.verdict),
            details=details,
            download=download,
            uploaded=uploaded,
            looked_up=looked_up,
        )

    def _max_upload_mb(self) -> str:
        return f"{self.settings.web_max_upload / (1024 * 1024):g}"

    def render_problem(self, problem: Problem, path: str) -> tuple[bytes, str]:
        """(body, content type) of `problem` for `path`: JSON under /api/, HTML elsewhere."""
        if path.startswith("/api/"):
            body = json.dumps({"detail": problem.en, "detail_vi": problem.vi}, ensure_ascii=False)
            return body.encode(), "application/json"
        root = "../" * max(path.count("/") - 1, 0)
        html = self.env.get_template("problem.html.j2").render(
            lab=self.lab,
            root=root,
            problem=problem,
            # Offer the form again after a refused upload.
            max_upload_mb=self._max_upload_mb() if problem.status in {413, 415, 422} else "",
        )
        return html.encode(), "text/html; charset=utf-8"


def busy() -> Problem:
    """503: every worker is taken and the wait ran out."""
    return Problem(
        503,
        "Máy chủ đang bận. Vui lòng thử lại sau ít phút.",
        "The server is busy. Try again in a minute.",
        {"Retry-After": "30"},
    )


def not_pdf() -> Problem:
    """415: the upload is not a PDF."""
    return Problem(
        415,
        "Tệp không phải PDF. Hãy chọn tệp PDF của giấy chứng nhận.",
        "The file is not a PDF. Choose the certificate's PDF file.",
    )
