"""The inspector's page behind the QR code: verdict page, PDF upload and a JSON API.

An inspector in a market or a factory scans the QR code on a certificate and must learn, on a
phone and in a few seconds, whether it is genuine and still valid, and see enough to compare it
with the instrument in front of them.

>>> from certissuer.web import create_app
>>> app = create_app(load_settings(Path("certissuer.toml")))  # doctest: +SKIP
>>> uvicorn.run(app, host="127.0.0.1", port=8080)  # doctest: +SKIP

Routes (HTML is bilingual, Vietnamese first, and needs no JavaScript):

* ``GET /v/{token}``: the verdict for a QR code. The token's signature is checked offline with
  the lab's public key first; a token that fails is NOT GENUINE and the database is never asked.
  Then the ledger decides: VALID, REVOKED (reason), SUPERSEDED by a number, EXPIRED, or NOT IN
  THE LEDGER, with the certificate's fields and the SHA-256 of the signed PDF.
* ``GET /v/{token}/pdf``: the signed PDF, where the lab allows it (``[web] allow_download``).
* ``GET /`` and ``POST /verify``: upload a PDF and get the full verdict of ``certissuer verify``.
* ``GET /api/v1/verdict/{token}``, ``POST /api/v1/verify``, ``GET /api/v1/lab``: the same as
  JSON, described by ``/api/v1/openapi.json``.

There is no lookup by certificate number: without a genuine token or the PDF itself nothing is
revealed, so numbers cannot be enumerated. The app reads the ledger and never writes it. Uploads
are limited in size (413) and type (415) and parsed in worker processes with time and memory
limits (`certissuer._webworker`); each client address (an IPv6 /64) is rate limited and may
have only a few uploads in progress at once (429 with Retry-After); a request body must be in
within a deadline (408); every response carries a strict Content-Security-Policy and friends;
every value is escaped.
The page never redirects, and all its links are relative.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import json
import logging
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

import jinja2
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from certissuer._webworker import PdfWorkerPool, PoolBusy, WorkerRefused, open_readonly_ledger
from certissuer.config import Settings
from certissuer.errors import CertissuerError, LedgerError, TokenError, VerificationFailed
from certissuer.issue import VIETNAM_TZ
from certissuer.ledger import CertificateEntry, Ledger, LedgerEvent
from certissuer.model import (
    CalibrationCertificate,
    VerificationCertificate,
    format_decimal,
    format_result,
    parse_certificate,
)
from certissuer.token import TokenClaims, TokenPublicKey, read_token
from certissuer.verify import Report, Verdict, Verifier

__all__ = ["CertificateDetails", "VerdictOut", "create_app", "web_template_dir"]

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PDF_MAGIC = b"%PDF-"
"""A PDF starts with this; readers accept up to 1024 bytes before it, and so does `verify`."""
_MAGIC_WINDOW = 1024
_UPLOAD_COST = 5
"""An upload costs this many requests of the client's rate (it keeps a worker busy)."""

_K = TypeVar("_K")
_V = TypeVar("_V")

_LEDGER_VERDICTS = frozenset({Verdict.VALID, Verdict.REVOKED, Verdict.SUPERSEDED, Verdict.EXPIRED})
"""Verdicts reached only for a genuine certificate found in the ledger: its fields are shown."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""No script at all, no inline style, no framing, forms post only to this site."""

_MODES = {
    "initial": ("Ban đầu", "Initial"),
    "periodic": ("Định kỳ", "Periodic"),
    "after_repair": ("Sau sửa chữa", "After repair"),
}


def web_template_dir() -> Path:
    """The folder of the page's templates (``templates/web``, shipped with certissuer)."""
    from certissuer.render import default_template_dir

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

    @property
    def is_verification(self) -> bool:
        """True for a verification certificate (Mẫu 18.GCNKĐ)."""
        return self.kind == "verification"

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
        if self.is_verification:
            return "GIẤY CHỨNG NHẬN KIỂM ĐỊNH", "CERTIFICATE OF VERIFICATION"
        return "GIẤY CHỨNG NHẬN HIỆU CHUẨN", "CALIBRATION CERTIFICATE"

    def rows(self) -> list[Row]:
        """The labelled lines of the page, with the forms' wording (FORMS.md)."""
        ver = self.is_verification

        def pick(verification: tuple[str, str], calibration: tuple[str, str]) -> tuple[str, str]:
            return verification if ver else calibration

        owner = self.owner + (f", {self.owner_address}" if self.owner_address else "")
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
        if self.mode in _MODES:
            vi, en = _MODES[self.mode]
            rows.append(Row("mode", "Chế độ kiểm định", "Verification mode", f"{vi} / {en}"))
        rows.append(Row("work-date", *pick(("Ngày kiểm định", "Date of verification"),
                                           ("Ngày hiệu chuẩn", "Date of calibration")),
                        _dmy(self.work_date)))  # fmt: skip
        rows.append(Row("issue-date", "Ngày cấp", "Date of issue", _dmy(self.issue_date)))
        if self.valid_until is not None:
            rows.append(Row("valid-until", "Có giá trị đến", "Valid until", _dmy(self.valid_until)))
        if self.conclusion_vi:
            rows.append(Row("result", *pick(("Kết luận", "Conclusion"), ("Kết quả", "Results")),
                            self.conclusion_vi if self.conclusion_vi == self.conclusion_en
                            else f"{self.conclusion_vi} / {self.conclusion_en}"))  # fmt: skip
        return rows


def _dmy(value: date) -> str:
    return f"{value:%d/%m/%Y}"


def _details(entry: CertificateEntry) -> CertificateDetails:
    """The page's fields for `entry`, from its stored data (or its columns, if unparsable)."""
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
        cert = parse_certificate(entry.data())
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
            "conclusion_vi": "Đạt yêu cầu kỹ thuật đo lường" if cert.passes else "",
            "conclusion_en": "Meets the metrological requirements" if cert.passes else "",
        }
    else:
        assert isinstance(cert, CalibrationCertificate)
        instrument, party = cert.item, cert.customer
        extra = {"place": cert.place_of_calibration, "results": _results(cert)}
        if cert.conformity is not None:
            extra["conclusion_vi"] = extra["conclusion_en"] = cert.conformity.statement
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
        measured, u = format_result(m.measured, m.uncertainty)
        error = m.effective_error
        rows.append(
            ResultRow(
                nominal="" if m.nominal is None else format_result(m.nominal, m.uncertainty)[0],
                measured=measured,
                error="" if error is None else format_result(error, m.uncertainty)[0],
                uncertainty=u,
                coverage_factor=format_decimal(m.coverage_factor),
                unit=m.unit,
            )
        )
    return tuple(rows)


def headline(report: Report) -> tuple[str, str]:
    """The verdict as the page states it, Vietnamese and English, in the forms' wording."""
    if report.verdict is Verdict.REVOKED and report.revocation_reason:
        reason = report.revocation_reason
        return f"ĐÃ THU HỒI (lý do {reason})", f"REVOKED (reason {reason})"
    if report.verdict is Verdict.SUPERSEDED and report.superseded_by:
        n = report.superseded_by
        return f"ĐÃ ĐƯỢC THAY THẾ bởi giấy chứng nhận số {n}", f"SUPERSEDED by certificate No. {n}"
    return report.label_vi, report.label_en


def _tone(verdict: Verdict) -> str:
    if verdict is Verdict.VALID:
        return "ok"
    if verdict in _LEDGER_VERDICTS:
        return "warn"
    return "bad"


@dataclass(frozen=True, slots=True)
class _Lab:
    name_vi: str
    name_en: str
    domain: str
    fingerprints: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings, keys: list[TokenPublicKey]) -> _Lab:
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


# -- JSON API models ------------------------------------------------------------------------


class ResultOut(BaseModel):
    """One calibration result point, as printed."""

    nominal: str
    measured: str
    error: str
    uncertainty: str = Field(description="Expanded uncertainty U")
    coverage_factor: str = Field(description="Coverage factor k")
    unit: str


class CertificateOut(BaseModel):
    """The certificate's fields (only for a genuine certificate found in the ledger)."""

    number: str
    kind: str = Field(description="verification or calibration")
    instrument: str
    model: str
    serial: str
    manufacturer: str
    owner: str
    owner_address: str
    place: str = Field(description="Place of use (verification) or of calibration")
    stamp_number: str
    method: str
    mode: str
    work_date: date = Field(description="Date of verification or calibration")
    issue_date: date
    valid_until: date | None
    conclusion_vi: str
    conclusion_en: str
    pdf_sha256: str = Field(description="SHA-256 (hex) of the signed PDF the lab issued")
    results: list[ResultOut]


class LabOut(BaseModel):
    """Who answers: compare the domain and the key fingerprint with what the lab publishes."""

    name_vi: str
    name_en: str
    domain: str
    token_key_fingerprints: list[str] = Field(
        description="SHA-256 (hex) of each QR token public key (DER SubjectPublicKeyInfo)"
    )


class VerdictOut(BaseModel):
    """The verdict for a QR token or an uploaded PDF."""

    verdict: Verdict
    ok: bool = Field(description="True only for a genuine, unaltered, current certificate")
    label_vi: str = Field(description="The verdict in Vietnamese, with reason or number")
    label_en: str = Field(description="The verdict in English, with reason or number")
    reasons: list[str]
    number: str | None = Field(description="The certificate number, when it is known genuine")
    pdf_sha256: str | None = Field(
        description="SHA-256 of the uploaded file, or of the registered PDF for a token"
    )
    signer: str | None
    signed_at: datetime | None
    superseded_by: str | None
    revocation_reason: str | None
    certificate: CertificateOut | None


class CheckpointOut(BaseModel):
    """The lab's newest signed checkpoint of its ledger's log: keep it to detect a rollback.

    ``certissuer ledger audit --witness URL_OR_FILE`` checks that the log still extends it.
    The signature covers ``certissuer-checkpoint/v1``, lab code, tree size, root (hex) and time
    (ISO 8601, microseconds), one per line, each followed by a newline.
    """

    format: str = Field(description="Always certissuer-checkpoint/v1")
    lab_code: str
    tree_size: int = Field(description="How many leaves (events) the checkpoint vouches for")
    root_hash: str = Field(description="RFC 6962 Merkle tree hash of those leaves (hex)")
    at: str = Field(description="When the lab signed it (ISO 8601, UTC)")
    kid: str = Field(description="Key id of the lab's token key that signed it (hex)")
    signature: str = Field(description="Ed25519 or ECDSA P-256 (raw r||s) signature (hex)")


class ConsistencyOut(BaseModel):
    """An RFC 6962 / 9162 consistency proof between an older tree size and the newest
    checkpoint."""

    first: int = Field(description="The older tree size (the from= parameter)")
    second: int = Field(description="The newest checkpoint's tree size")
    first_root: str = Field(description="Root of the first `first` leaves, as stored now (hex)")
    second_root: str = Field(
        description="Root of the stored leaves at the newest checkpoint's size (hex); it is "
        "the checkpoint's root_hash unless the stored log was changed"
    )
    proof: list[str] = Field(description="The proof's nodes (hex), RFC 9162 §2.1.4")


class ProblemOut(BaseModel):
    """Why a request was refused."""

    detail: str
    detail_vi: str


def _verdict_out(report: Report, details: CertificateDetails | None) -> VerdictOut:
    vi, en = headline(report)
    genuine = report.verdict in _LEDGER_VERDICTS or report.verdict is Verdict.NOT_IN_LEDGER
    return VerdictOut(
        verdict=report.verdict,
        ok=report.ok,
        label_vi=vi,
        label_en=en,
        reasons=list(report.reasons),
        number=report.number if genuine else None,
        pdf_sha256=report.pdf_sha256 or (details.pdf_sha256 if details else None),
        signer=report.signer,
        signed_at=report.signed_at,
        superseded_by=report.superseded_by,
        revocation_reason=report.revocation_reason,
        certificate=None
        if details is None
        else CertificateOut(
            number=details.number,
            kind=details.kind,
            instrument=details.instrument,
            model=details.model,
            serial=details.serial,
            manufacturer=details.manufacturer,
            owner=details.owner,
            owner_address=details.owner_address,
            place=details.place,
            stamp_number=details.stamp_number,
            method=details.method,
            mode=details.mode,
            work_date=details.work_date,
            issue_date=details.issue_date,
            valid_until=details.valid_until,
            conclusion_vi=details.conclusion_vi,
            conclusion_en=details.conclusion_en,
            pdf_sha256=details.pdf_sha256,
            results=[ResultOut(**_asdict(r)) for r in details.results],
        ),
    )


def _asdict(row: ResultRow) -> dict[str, str]:
    return {name: getattr(row, name) for name in ResultRow.__slots__}


# -- refusals -------------------------------------------------------------------------------


@dataclass
class _Problem(Exception):
    """A request refused with an HTTP status and a bilingual message."""

    status: int
    vi: str
    en: str
    headers: dict[str, str] = field(default_factory=dict)


_Render = Callable[[_Problem, str], tuple[bytes, str]]
"""Renders a problem for a path: (body, content type); JSON under /api/, HTML elsewhere."""


async def _send_problem(send: Send, problem: _Problem, path: str, render: _Render) -> None:
    body, content_type = render(problem, path)
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- middleware (plain ASGI: cheaper than BaseHTTPMiddleware, and it sees the raw body) -------


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a request body over `limit` bytes, before the body is read in full.

    A declared Content-Length over the limit is refused before a byte of the body is read;
    a chunked body is counted as it streams in and refused at the first chunk past the limit.
    """

    def __init__(self, app: ASGIApp, *, limit: int, render: _Render) -> None:
        self.app, self.limit, self.render = app, limit, render

    def _problem(self) -> _Problem:
        mb = self.limit / (1024 * 1024)
        return _Problem(
            413,
            f"Tệp quá lớn: tối đa {mb:g} MB.",
            f"The file is too large: at most {mb:g} MB.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    bad = _Problem(400, "Yêu cầu không hợp lệ.", "Malformed Content-Length.")
                    await _send_problem(send, bad, path, self.render)
                    return
                if declared > self.limit:
                    await _send_problem(send, self._problem(), path, self.render)
                    return
        received = 0
        exceeded = False
        responded = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            if exceeded:
                return  # the app's own answer to a body cut short (400) is replaced by 413
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not responded:
            await _send_problem(send, self._problem(), path, self.render)


def client_key(scope: Scope) -> str:
    """The address a request is counted against: the client's IPv4 address, or its IPv6 /64.

    One IPv6 subscriber usually gets a whole /64 (2^64 addresses): counted address by address,
    a single client could take a fresh address for every request. An IPv4-mapped IPv6 address
    counts as the IPv4 address. The address is the ASGI scope's client, which uvicorn sets from
    X-Forwarded-For only for ``[web] trusted_proxies``.
    """
    client = scope.get("client")
    if not client:
        return "?"
    host = str(client[0])
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # no zone index (fe80::1%eth0)
    except ValueError:
        return host  # not an IP address (a Unix socket, a test client's name)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _too_many(wait: int) -> _Problem:
    return _Problem(
        429,
        f"Quá nhiều yêu cầu. Vui lòng thử lại sau {wait} giây.",
        f"Too many requests. Try again in {wait} s.",
        {"Retry-After": str(wait)},
    )


class RateLimit:
    """A token bucket per client address: `per_minute` requests a minute, `burst` at once.

    Over it: 429 with Retry-After (whole seconds until the request would be allowed). An upload
    costs `_UPLOAD_COST` requests. Clients are counted by `client_key` (IPv6 by /64). The
    buckets live in memory, one process; behind a proxy, configure ``[web] trusted_proxies``
    so the client's address is the real one.
    """

    _MAX_CLIENTS = 10_000

    def __init__(self, app: ASGIApp, *, per_minute: int, burst: int, render: _Render) -> None:
        self.app, self.render = app, render
        self.rate = per_minute / 60.0
        self.burst = float(max(burst, 1))
        self.buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        now = time.monotonic()
        tokens, last = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        cost = min(float(_UPLOAD_COST if scope["method"] == "POST" else 1), self.burst)
        if tokens < cost:
            self.buckets[key] = (tokens, now)
            wait = max(1, math.ceil((cost - tokens) / self.rate))
            await _send_problem(send, _too_many(wait), scope.get("path", ""), self.render)
            return
        self.buckets[key] = (tokens - cost, now)
        if len(self.buckets) > self._MAX_CLIENTS:
            self._forget_idle(now)
        await self.app(scope, receive, send)

    def _forget_idle(self, now: float) -> None:
        # A client whose bucket has refilled is indistinguishable from a new one.
        full = [
            k for k, (t, last) in self.buckets.items() if t + (now - last) * self.rate >= self.burst
        ]
        for k in full:
            del self.buckets[k]
        if len(self.buckets) > self._MAX_CLIENTS:  # all busy: drop the older half
            by_age = sorted(self.buckets, key=lambda k: self.buckets[k][1])
            for k in by_age[: len(by_age) // 2]:
                del self.buckets[k]


class UploadLimit:
    """At most `per_client` uploads in progress at once per client address (`client_key`).

    Every POST of this app is an upload: it holds a PDF worker for up to ``[web] pdf_timeout``
    seconds, so a client that starts many at once, each within the per-minute rate, would keep
    every worker busy and everyone else waiting. One more than `per_client` gets 429 with
    Retry-After at once, before its body is read; other addresses are not affected. An upload
    counts from its headers until its answer is sent. 0 turns the limit off.
    """

    _RETRY_AFTER = 5

    def __init__(self, app: ASGIApp, *, per_client: int, render: _Render) -> None:
        self.app, self.per_client, self.render = app, per_client, render
        self.active: dict[str, int] = {}
        """Uploads in progress per client key (keys at zero are removed)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or self.per_client <= 0:
            await self.app(scope, receive, send)
            return
        key = client_key(scope)
        # One event loop, no await between the test and the increment: no lock needed.
        if self.active.get(key, 0) >= self.per_client:
            _logger.info("%s: over %d uploads at once, refused", key, self.per_client)
            wait = self._RETRY_AFTER
            problem = _Problem(
                429,
                f"Địa chỉ của bạn đang gửi quá nhiều tệp cùng lúc. Vui lòng thử lại sau {wait} "
                "giây.",
                f"Too many uploads at once from your address. Try again in {wait} s.",
                {"Retry-After": str(wait)},
            )
            await _send_problem(send, problem, scope.get("path", ""), self.render)
            return
        self.active[key] = self.active.get(key, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self.active[key] - 1
            if left:
                self.active[key] = left
            else:
                del self.active[key]


class _BodyTimedOut(Exception):
    pass


class BodyDeadline:
    """408 for a request whose body is not all in within `seconds` of its headers.

    A client that trickles its body a byte at a time (or stops) would otherwise hold the
    connection, and an upload slot, for as long as it likes. The deadline covers the whole
    body, not each read, so a steady trickle is cut as surely as a stall. The answer says
    ``Connection: close``, so the server drops the connection after it. 0 turns it off.
    """

    def __init__(self, app: ASGIApp, *, seconds: float, render: _Render) -> None:
        self.app, self.seconds, self.render = app, seconds, render

    def _problem(self) -> _Problem:
        return _Problem(
            408,
            "Tệp được gửi quá chậm. Vui lòng thử lại.",
            f"The file was sent too slowly (more than {self.seconds:g} s). Try again.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        timed_out = False
        body_done = False
        responded = False

        async def timed_receive() -> Message:
            nonlocal timed_out, body_done
            if body_done:  # afterwards the app only listens for a disconnect: no deadline
                return await receive()
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            if timed_out:
                return  # the app's answer to a body cut short is replaced by 408
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not timed_out:
                raise
        if timed_out and not responded:
            _logger.info("%s: request body not in after %g s", client_key(scope), self.seconds)
            await _send_problem(send, self._problem(), scope.get("path", ""), self.render)


class SecurityHeaders:
    """Adds the security headers to every response, and turns a crash into a plain 500."""

    def __init__(self, app: ASGIApp, *, hsts: bool, render: _Render) -> None:
        self.app, self.render = app, render
        self.headers = [
            (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),  # the token is in the URL: never pass it on
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
            (b"x-robots-tag", b"noindex, nofollow"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self.headers if h[0] not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            _logger.exception("request %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            problem = _Problem(500, "Lỗi máy chủ.", "Internal server error.")
            await _send_problem(send_with_headers, problem, scope.get("path", ""), self.render)


# -- the app --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Answer:
    """The verdict for a token, with the page once it has been rendered."""

    report: Report
    details: CertificateDetails | None
    html: bytes | None = None


class _Lru(Generic[_K, _V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class _FairSlots:
    """The PDF workers' time, shared fairly between client addresses.

    A check waits here (in the event loop, holding no thread) for one of `slots` workers.
    When a worker frees up it goes to the waiting check whose address has the fewest checks
    outstanding (running or waiting), the oldest first among equals: a client that floods
    uploads up to its per-address limit, from one address or many, waits behind an inspector
    with a single upload instead of ahead of them.
    """

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.outstanding: dict[str, int] = {}
        self._waiting: list[tuple[str, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def _count(self, key: str, change: int) -> None:
        left = self.outstanding.get(key, 0) + change
        if left:
            self.outstanding[key] = left
        else:
            self.outstanding.pop(key, None)

    async def acquire(self, key: str, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a worker for client `key`; False if none."""
        self._count(key, 1)
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return True
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (key, next(self._seq), granted)
        self._waiting.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(granted), timeout)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            self._give_up(waiter)
            raise
        if granted.done():
            return True
        self._give_up(waiter)
        return False

    def _give_up(self, waiter: tuple[str, int, asyncio.Future[None]]) -> None:
        key, _, granted = waiter
        if granted.done():  # a worker was handed over just as the wait ended: pass it on
            self.release(key)
        else:
            self._waiting.remove(waiter)
            self._count(key, -1)

    def release(self, key: str) -> None:
        """Give the worker that client `key` used to the fairest waiting check."""
        self._count(key, -1)
        if not self._waiting:
            self.free += 1
            return
        chosen = min(self._waiting, key=lambda w: (self.outstanding.get(w[0], 0), w[1]))
        self._waiting.remove(chosen)
        chosen[2].set_result(None)


_EVENT_COUNT = (
    sa_select(func.count())
    .select_from(LedgerEvent)
    .where(col(LedgerEvent.number) == bindparam("number"))
)


class _Site:
    """Everything the routes share: settings, verifier, ledger, worker pool, templates."""

    def __init__(self, settings: Settings, ledger: Ledger, pool: PdfWorkerPool) -> None:
        self.settings = settings
        self.ledger = ledger
        self.pool = pool
        self.verifier = Verifier.from_settings(
            settings, ledger=ledger, token_public=settings.web_token_public
        )
        self.lab = _Lab.of(settings, self.verifier.token_keys)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(web_template_dir()),
            autoescape=True,  # every template, whatever its name: all values are escaped
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self.env.filters["grouped"] = _grouped
        self.env.filters["dmy"] = _dmy
        self.css = (web_template_dir() / "web.css").read_bytes()
        # Answers for genuine tokens of issued certificates, keyed by token, date and event
        # count. A completed ledger entry never changes; what can change its verdict is a new
        # event (revoked, superseded) or the date (expired). Events are only ever appended, so
        # the certificate's event count, one small indexed query, tells whether an answer
        # still holds: a revocation shows on the very next request. Forged tokens never get in.
        self.answers: _Lru[tuple[str, date, int], _Answer] = _Lru(2048)
        self.genuine: _Lru[str, TokenClaims] = _Lru(8192)
        """Tokens whose signature was checked (a signature stays valid; keys are fixed)."""
        compiled = _EVENT_COUNT.compile(dialect=ledger.engine.dialect)
        self._count_sql = str(compiled)
        self._count_positional = bool(compiled.positional)
        self.local_ledger = ledger.engine.dialect.name == "sqlite"
        self.slots = _FairSlots(pool.size)
        self.slot_wait = 2 * settings.web_pdf_timeout + 1
        """Seconds an upload may wait for a worker: one check's time limit and more."""
        # A few threads for ledger reads over the network: fewer threads than Starlette's 40
        # contend less for the GIL, which keeps the slowest answers close to the typical ones.
        self.readers = ThreadPoolExecutor(4, thread_name_prefix="certissuer-ledger")
        self._driver_error: type[Exception] = getattr(ledger.engine.dialect.dbapi, "Error", OSError)
        """The driver's base error (PEP 249): raw driver calls raise it unwrapped."""

    # rendering

    def render(self, template: str, *, root: str, **context: Any) -> str:
        return self.env.get_template(template).render(
            lab=self.lab, root=root, max_upload_mb=self._max_upload_mb(), **context
        )

    def page(self, template: str, *, root: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.render(template, root=root, **context), status_code=status)

    def _max_upload_mb(self) -> str:
        return f"{self.settings.web_max_upload / (1024 * 1024):g}"

    def render_problem(self, problem: _Problem, path: str) -> tuple[bytes, str]:
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

    # checks

    def check_token(self, token: str) -> _Answer:
        """The verdict for a QR token: its signature offline first, then the ledger."""
        claims = self.genuine.get(token)
        if claims is None:
            try:
                claims = read_token(token, self.verifier.token_keys)
            except TokenError as exc:
                # Forged, altered, truncated, a bare number: answered without the database.
                return _Answer(Report(Verdict.ALTERED, reasons=[f"QR token: {exc}"]), None)
            self.genuine.put(token, claims)
        key = (token, datetime.now(VIETNAM_TZ).date(), self._event_count(claims.number))
        cached = self.answers.get(key)
        if cached is not None:
            return cached
        report = self.verifier.verify_url(token)
        details = None
        if report.verdict in _LEDGER_VERDICTS and report.number:
            entry = self._verified_entry(report)
            if entry is not None:
                details = _details(entry)
                report.pdf_sha256 = entry.pdf_sha256
        answer = _Answer(report, details)
        if details is not None:
            self.answers.put(key, answer)
        return answer

    def _verified_entry(self, report: Report) -> CertificateEntry | None:
        """The entry behind `report`, only if its data are those the verdict was reached on.

        The details shown come from the stored data, read again here: they must hash to the
        digest the verifier recomputed and matched with the token and the lab's signature, so
        an edit between the two reads shows nothing rather than unverified fields.
        """
        entry = self.ledger.get(report.number) if report.number else None
        if entry is None or report.data_digest is None:
            return None
        if hashlib.sha256(entry.data_json.encode()).hexdigest() != report.data_digest:
            _logger.error("%s: the stored data changed during the check", entry.number)
            return None
        return entry

    def _event_count(self, number: str) -> int:
        # Straight through the driver: this runs on every request, and SQLAlchemy's execution
        # layer costs several times the query itself.
        params: Any = (number,) if self._count_positional else {"number": number}
        try:
            conn = self.ledger.engine.raw_connection()
            try:
                cursor = conn.cursor()
                cursor.execute(self._count_sql, params)
                row = cursor.fetchone()
                cursor.close()
            finally:
                conn.close()  # back to the pool, which rolls back (PostgreSQL)
        except (SQLAlchemyError, self._driver_error) as exc:
            raise LedgerError(f"the ledger database failed: {exc}") from exc
        return int(row[0]) if row else 0

    async def check_upload(
        self, data: bytes, client: str
    ) -> tuple[Report, CertificateDetails | None]:
        """`check_pdf` for an upload from client address `client`, once a worker is its turn."""
        if not await self.slots.acquire(client, self.slot_wait):
            raise _busy()
        try:
            return await run_in_threadpool(self.check_pdf, data)
        finally:
            self.slots.release(client)

    def check_pdf(self, data: bytes) -> tuple[Report, CertificateDetails | None]:
        """The verdict for an uploaded PDF, computed in a worker process."""
        try:
            report = Report.from_dict(self.pool.verify(data))
        except PoolBusy:
            raise _busy() from None
        except WorkerRefused as exc:
            raise _Problem(
                422,
                "Không kiểm tra được tệp này trong giới hạn cho phép: đây không phải giấy chứng "
                "nhận do phòng thí nghiệm cấp.",
                f"This file could not be checked within the limits ({exc}): it is not a "
                "certificate issued by the lab.",
            ) from None
        except VerificationFailed:
            raise _not_pdf() from None
        except CertissuerError as exc:  # a worker could not start or read the ledger
            _logger.error("PDF check failed: %s", exc)
            raise _Problem(
                503,
                "Không kiểm tra được tệp lúc này. Vui lòng thử lại sau.",
                "Files cannot be checked right now. Try again later.",
                {"Retry-After": "60"},
            ) from None
        details = None
        if report.verdict in _LEDGER_VERDICTS and report.number:
            # The verifier matched this file to the entry (by its hash, or by the revision
            # that the lab issued when validation data was added later).
            entry = self._verified_entry(report)
            if entry is not None:
                details = _details(entry)
        return report, details

    def signed_pdf(self, token: str) -> tuple[bytes, str]:
        """The registered signed PDF for a genuine token, checked against its SHA-256."""
        unavailable = _Problem(
            404, "Không có tệp PDF để tải về.", "The PDF is not available for download."
        )
        if not self.settings.web_allow_download:
            raise unavailable
        try:
            read_token(token, self.verifier.token_keys)
        except TokenError:
            raise unavailable from None
        report = self.verifier.verify_url(token)
        entry = self._verified_entry(report)
        if report.verdict not in _LEDGER_VERDICTS or entry is None or not entry.pdf_path:
            raise unavailable
        try:
            data = Path(entry.pdf_path).read_bytes()
        except OSError:
            _logger.warning("%s: cannot read %s", entry.number, entry.pdf_path)
            raise unavailable from None
        if hashlib.sha256(data).hexdigest() != entry.pdf_sha256:
            _logger.error("%s: %s differs from the ledger's SHA-256", entry.number, entry.pdf_path)
            raise unavailable
        return data, _ascii_filename(entry.number)


def _ascii_filename(number: str) -> str:
    folded = unicodedata.normalize("NFKD", number.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in folded if c.isascii() and (c.isalnum() or c in "-_.")) + ".pdf"


def _busy() -> _Problem:
    return _Problem(
        503,
        "Máy chủ đang bận. Vui lòng thử lại sau ít phút.",
        "The server is busy. Try again in a minute.",
        {"Retry-After": "30"},
    )


def _not_pdf() -> _Problem:
    return _Problem(
        415,
        "Tệp không phải PDF. Hãy chọn tệp PDF của giấy chứng nhận.",
        "The file is not a PDF. Choose the certificate's PDF file.",
    )


async def _read_pdf_upload(file: UploadFile | None) -> bytes:
    if file is None:
        raise _Problem(400, "Chưa chọn tệp.", "No file was chosen.")
    head = await file.read(_MAGIC_WINDOW)
    if PDF_MAGIC not in head:
        raise _not_pdf()
    return head + await file.read()


_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ProblemOut,
        "description": "Too many requests, or uploads at once, from the address (see Retry-After)",
    },
    413: {"model": ProblemOut, "description": "Request body over the size limit"},
    503: {"model": ProblemOut, "description": "Busy or the ledger cannot be read"},
}
_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_PROBLEM_RESPONSES,
    400: {"model": ProblemOut, "description": "Malformed multipart body"},
    408: {"model": ProblemOut, "description": "The body was not sent within the deadline"},
    415: {"model": ProblemOut, "description": "The file is not a PDF"},
    422: {"description": "No file given, or the file overran the time or memory limits"},
}


def create_app(settings: Settings, *, ledger: Ledger | None = None) -> FastAPI:
    """The verification web app for the lab described by `settings`.

    `ledger` is the ledger to read; None opens ``settings.ledger_url`` read-only (the app never
    writes it). PDF workers open the ledger read-only themselves. Raises `ConfigError` when
    the trust roots or token key are missing and `LedgerError` when the ledger cannot be
    opened.
    """
    own_ledger = ledger is None
    ledger = ledger if ledger is not None else open_readonly_ledger(settings.ledger_url)
    pool = PdfWorkerPool(
        settings,
        size=max(settings.web_pdf_workers, 1),
        timeout=settings.web_pdf_timeout,
        memory_bytes=settings.web_pdf_memory_mb * 1024 * 1024,
    )
    site = _Site(settings, ledger, pool)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()
        site.readers.shutdown(wait=False, cancel_futures=True)
        if own_ledger:
            site.ledger.engine.dispose()

    app = FastAPI(
        title="certissuer verification",
        summary="Verdicts for verification and calibration certificates, by QR token or PDF.",
        version=_version(),
        docs_url=None,  # Swagger UI needs inline script, which the CSP forbids
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        # Starlette would answer "/v/x/" with a redirect built from the request's Host header.
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.site = site
    app.state.pdf_pool = pool
    app.state.ledger = ledger

    @app.exception_handler(_Problem)
    async def _problem(request: Request, exc: _Problem) -> Response:
        body, content_type = site.render_problem(exc, request.url.path)
        return Response(body, status_code=exc.status, media_type=None, headers={
            "content-type": content_type, **exc.headers})  # fmt: skip

    @app.exception_handler(LedgerError)
    async def _ledger_down(request: Request, exc: LedgerError) -> Response:
        _logger.error("ledger: %s", exc)
        problem = _Problem(
            503,
            "Không đọc được sổ cấp lúc này. Vui lòng thử lại sau.",
            "The ledger cannot be read right now. Try again later.",
            {"Retry-After": "60"},
        )
        return await _problem(request, problem)

    # -- HTML ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return site.page("index.html.j2", root="")

    @app.get("/static/web.css", include_in_schema=False)
    def stylesheet() -> Response:
        return Response(
            site.css,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def verdict_page(request: Request) -> Response:
        token: str = request.path_params["token"]
        if site.local_ledger:
            # An SQLite read takes tens of microseconds: less than a hop to a worker thread.
            answer = site.check_token(token)
        else:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(site.readers, site.check_token, token)
        if answer.html is None:
            report, details = answer.report, answer.details
            download = (
                f"{token}/pdf"
                if details is not None and settings.web_allow_download and details.pdf_sha256
                else None
            )
            answer.html = site.render(
                "verdict.html.j2",
                root="../",
                report=report,
                headline=headline(report),
                tone=_tone(report.verdict),
                details=details,
                download=download,
                uploaded=False,
            ).encode()
        return Response(answer.html, media_type="text/html; charset=utf-8")

    # The hot path (every QR scan): a plain Starlette route, without FastAPI's parameter
    # machinery, which costs more than the rest of the request.
    app.add_route("/v/{token}", verdict_page, methods=["GET"], include_in_schema=False)

    @app.get("/v/{token}/pdf", include_in_schema=False)
    def download_pdf(token: str) -> Response:
        data, filename = site.signed_pdf(token)
        return Response(
            data,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.post("/verify", response_class=HTMLResponse, include_in_schema=False)
    async def verify_upload(
        request: Request,
        file: Annotated[UploadFile | None, File(description="The certificate PDF")] = None,
    ) -> HTMLResponse:
        data = await _read_pdf_upload(file)
        report, details = await site.check_upload(data, client_key(request.scope))
        return site.page(
            "verdict.html.j2",
            root="",
            report=report,
            headline=headline(report),
            tone=_tone(report.verdict),
            details=details,
            download=None,
            uploaded=True,
        )

    # -- JSON API -----------------------------------------------------------------------

    @app.get(
        "/api/v1/verdict/{token}",
        response_model=VerdictOut,
        responses=_PROBLEM_RESPONSES,
        tags=["verify"],
        summary="Verdict for a QR token",
    )
    def api_verdict(token: str) -> VerdictOut:
        """The verdict for the token of a QR code (the last part of ``<base>/v/<token>``).

        The token's signature is checked first, offline; a token that fails is ``altered``
        (NOT GENUINE) and the ledger is not asked.
        """
        answer = site.check_token(token)
        return _verdict_out(answer.report, answer.details)

    @app.post(
        "/api/v1/verify",
        response_model=VerdictOut,
        responses=_UPLOAD_RESPONSES,
        tags=["verify"],
        summary="Verdict for an uploaded PDF",
    )
    async def api_verify(
        request: Request,
        file: Annotated[UploadFile, File(description="The signed certificate PDF")],
    ) -> VerdictOut:
        """Upload the certificate's PDF and get the full verdict of ``certissuer verify``."""
        data = await _read_pdf_upload(file)
        return _verdict_out(*await site.check_upload(data, client_key(request.scope)))

    @app.get(
        "/api/v1/lab",
        response_model=LabOut,
        responses=_PROBLEM_RESPONSES,
        tags=["lab"],
        summary="Who answers",
    )
    def api_lab() -> LabOut:
        """The lab's name, the domain of its verification page and its token key fingerprints."""
        return LabOut(
            name_vi=site.lab.name_vi,
            name_en=site.lab.name_en,
            domain=site.lab.domain,
            token_key_fingerprints=list(site.lab.fingerprints),
        )

    @app.get(
        "/api/v1/checkpoint",
        response_model=CheckpointOut,
        responses={
            **_PROBLEM_RESPONSES,
            404: {"model": ProblemOut, "description": "No checkpoint yet"},
        },
        tags=["log"],
        summary="The newest signed checkpoint of the ledger's log",
    )
    def api_checkpoint() -> CheckpointOut:
        """The lab's newest signed checkpoint (tree size and root of its ledger's Merkle log).

        Save it (or let another server fetch it): ``certissuer ledger audit --witness`` then
        proves that the log was not rolled back behind it.
        """
        cp = site.ledger.latest_checkpoint()
        if cp is None:
            raise _Problem(
                404, "Sổ cấp chưa có điểm kiểm tra.", "The ledger has no checkpoint yet."
            )
        return CheckpointOut(**cp.to_json())

    @app.get(
        "/api/v1/consistency",
        response_model=ConsistencyOut,
        responses={
            **_PROBLEM_RESPONSES,
            400: {"model": ProblemOut, "description": "from is outside the log"},
            404: {"model": ProblemOut, "description": "No checkpoint yet"},
            409: {"model": ProblemOut, "description": "The stored log is shorter than it"},
        },
        tags=["log"],
        summary="Consistency proof from a tree size to the newest checkpoint",
    )
    def api_consistency(
        first: Annotated[
            int, Query(alias="from", ge=1, description="The older tree size (a saved checkpoint)")
        ],
    ) -> ConsistencyOut:
        """Proof (RFC 6962) that the log of size ``from`` is a prefix of the newest checkpoint."""
        cp = site.ledger.latest_checkpoint()
        if cp is None:
            raise _Problem(
                404, "Sổ cấp chưa có điểm kiểm tra.", "The ledger has no checkpoint yet."
            )
        if first > cp.tree_size:
            raise _Problem(
                400,
                "Kích thước vượt quá điểm kiểm tra mới nhất.",
                f"from={first} is beyond the newest checkpoint (size {cp.tree_size}).",
            )
        try:
            proof = site.ledger.consistency(first, cp.tree_size)
        except LedgerError as exc:  # the stored log is shorter than its checkpoint
            raise _Problem(
                409, "Sổ cấp không khớp điểm kiểm tra.", f"The log cannot prove it: {exc}"
            ) from None
        return ConsistencyOut(**proof)

    # Outermost last: headers on every answer, then the rate limit, the uploads in progress,
    # the body's deadline and the body's size.
    app.add_middleware(BodyLimit, limit=settings.web_max_upload, render=site.render_problem)
    app.add_middleware(BodyDeadline, seconds=settings.web_body_timeout, render=site.render_problem)
    app.add_middleware(
        UploadLimit, per_client=settings.web_upload_concurrency, render=site.render_problem
    )
    app.add_middleware(
        RateLimit,
        per_minute=settings.web_rate_limit,
        burst=settings.web_rate_burst,
        render=site.render_problem,
    )
    app.add_middleware(
        SecurityHeaders,
        hsts=settings.token_url_base.startswith("https://"),
        render=site.render_problem,
    )
    return app


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("certissuer")
    except PackageNotFoundError:
        return "0"
