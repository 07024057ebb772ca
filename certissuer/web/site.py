"""What the routes share: settings, verifier, ledger, worker pool, pages and answer caches.

A `Site` answers the page's and the API's questions: the verdict for a QR token (offline
signature check, then the ledger, cached until the certificate's events change), the verdict
for an uploaded PDF (in a worker process) and the registered signed PDF for download.

>>> site = Site(settings, ledger, pool)  # doctest: +SKIP
>>> site.check_token(token).report.verdict  # doctest: +SKIP
<Verdict.VALID: 'valid'>
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from certissuer._files import issued_length
from certissuer._vn import VIETNAM_TZ, file_stem, fold
from certissuer.config import Settings
from certissuer.errors import (
    AmbiguousNumber,
    CertissuerError,
    LedgerError,
    TokenError,
    VerificationFailed,
)
from certissuer.ledger import CertificateEntry, Ledger
from certissuer.ledger.storage import open_store
from certissuer.token import TokenClaims, read_token
from certissuer.verify import Report, Verdict, Verifier, _standing
from certissuer.web.middleware import Problem
from certissuer.web.offline import Offline
from certissuer.web.views import (
    LEDGER_VERDICTS,
    CertificateDetails,
    Lab,
    Pages,
    busy,
    certificate_details,
    not_pdf,
)
from certissuer.web.worker import PdfWorkerPool, PoolBusy, WorkerRefused

__all__ = [
    "LOOKUP_NOT_FOUND",
    "PDF_MAGIC",
    "Answer",
    "FairSlots",
    "Lru",
    "Site",
    "lookup_fields",
    "read_pdf_upload",
    "serial_key",
]

_logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
"""A PDF starts with this; readers accept up to 1024 bytes before it, and so does `verify`."""
_MAGIC_WINDOW = 1024

LOOKUP_NOT_FOUND = "no issued certificate has this number and this serial number"
"""The lookup's one answer for an unknown number, a wrong serial number or an unissued entry."""

_SERIAL_IGNORED = re.compile(r"[\s\-‐‑‒–—]+")


def serial_key(text: str) -> str:
    """A serial number as compared by the lookup: case folded, spaces and dashes ignored."""
    return _SERIAL_IGNORED.sub("", fold(text))


_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(slots=True)
class Answer:
    """The verdict for a token, with the page once it has been rendered."""

    report: Report
    details: CertificateDetails | None
    html: bytes | None = None


class Lru(Generic[_K, _V]):
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


class FairSlots:
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


class Site:
    """Everything the routes share: settings, verifier, ledger, worker pool, pages, caches."""

    def __init__(self, settings: Settings, ledger: Ledger, pool: PdfWorkerPool) -> None:
        self.settings = settings
        self.ledger = ledger
        self.pool = pool
        self.verifier = Verifier.from_settings(
            settings, ledger=ledger, token_public=settings.web_token_public
        )
        self.lab = Lab.of(settings, self.verifier.token_keys)
        self.pages = Pages(settings, self.lab)
        # The offline page lives at static/offline.html, one folder deep like V/<token>,
        # whose address it is shown at: the same relative links work at both.
        self.offline = Offline(
            settings,
            ledger,
            self.verifier.token_keys,
            self.lab,
            self.pages.render("offline.html.j2", root="../"),
            register=self.verifier.register,
        )
        # Answers for genuine tokens of issued certificates, keyed by token, date and event
        # count. A completed ledger entry never changes; what can change its verdict is a new
        # event (revoked, superseded) or the date (expired). Events are only ever appended, so
        # the certificate's event count (`Ledger.event_count`, one small indexed query) tells
        # whether an answer still holds: a revocation shows on the very next request. Forged
        # tokens never get in.
        self.answers: Lru[tuple[str, date, int], Answer] = Lru(2048)
        self.genuine: Lru[str, TokenClaims] = Lru(8192)
        """Tokens whose signature was checked (a signature stays valid; keys are fixed)."""
        self.local_ledger = ledger.is_sqlite
        self.slots = FairSlots(pool.size)
        self.slot_wait = 2 * settings.web_pdf_timeout + 1
        """Seconds an upload may wait for a worker: one check's time limit and more."""
        # A few threads for ledger reads over the network: fewer threads than Starlette's 40
        # contend less for the GIL, which keeps the slowest answers close to the typical ones.
        self.readers = ThreadPoolExecutor(4, thread_name_prefix="certissuer-ledger")

    # checks

    def check_token(self, token: str) -> Answer:
        """The verdict for a QR token: its signature offline first, then the ledger."""
        claims = self.genuine.get(token)
        if claims is None:
            try:
                claims = read_token(token, self.verifier.token_keys)
            except TokenError as exc:
                # Forged, altered, truncated, a bare number: answered without the database.
                return Answer(Report(Verdict.ALTERED, reasons=[f"QR token: {exc}"]), None)
            self.genuine.put(token, claims)
        try:
            count = self.ledger.event_count(claims.number)
        except LedgerError as exc:
            # A genuine token with the ledger out of reach: "could not check", never "invalid".
            _logger.error("ledger: %s", exc)
            why = "the ledger could not be reached"
            report = self.verifier.offline_report(claims, why)
            return Answer(self.verifier.judge_keys(report, claims), None)
        key = (token, datetime.now(VIETNAM_TZ).date(), count)
        cached = self.answers.get(key)
        if cached is not None:
            return cached
        report = self.verifier.verify_url(token)
        details = None
        if report.verdict in LEDGER_VERDICTS and report.number:
            entry = self._verified_entry(report)
            if entry is not None:
                details = certificate_details(entry, show_customer=self.settings.web_show_customer)
                report.pdf_sha256 = entry.pdf_sha256
        answer = Answer(report, details)
        if details is not None:
            self.answers.put(key, answer)
        return answer

    def lookup(self, number: str, serial: str) -> Answer:
        """The ledger's verdict for certificate `number` (as people type it), only if the
        instrument's `serial` number matches too (case, spaces and dashes aside).

        An unknown number, a wrong serial number and an entry not yet issued all get the
        same answer (`LOOKUP_NOT_FOUND`), so the lookup tells nothing about numbers alone.
        Neither a token nor a file is checked: the verdict is the ledger's status only.
        """
        try:
            entry = self.ledger.get(number)
        except AmbiguousNumber:
            entry = None  # the number fits two series: typed as printed, it resolves
        wanted = serial_key(serial)
        if (
            entry is None
            or entry.is_pending
            or not wanted
            or not hmac.compare_digest(
                serial_key(entry.instrument_serial).encode(), wanted.encode()
            )
        ):
            return Answer(Report(Verdict.NOT_IN_LEDGER, reasons=[LOOKUP_NOT_FOUND]), None)
        report = Report(Verdict.VALID, number=entry.number)
        report.reasons.append(
            "looked up by number and serial number: the ledger's status only; no QR token "
            "or file was checked"
        )
        keys = self.verifier.token_keys
        report = _standing.judge(report, self.ledger, keys, entry, None, None)
        details = None
        if report.verdict in LEDGER_VERDICTS and report.number:
            checked = self._verified_entry(report)
            if checked is not None:
                details = certificate_details(checked)
                report.pdf_sha256 = checked.pdf_sha256
        return Answer(report, details)

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

    async def check_upload(
        self, data: bytes, client: str
    ) -> tuple[Report, CertificateDetails | None]:
        """`check_pdf` for an upload from client address `client`, once a worker is its turn."""
        if not await self.slots.acquire(client, self.slot_wait):
            raise busy()
        try:
            return await run_in_threadpool(self.check_pdf, data)
        finally:
            self.slots.release(client)

    def check_pdf(self, data: bytes) -> tuple[Report, CertificateDetails | None]:
        """The verdict for an uploaded PDF, computed in a worker process."""
        try:
            report = Report.from_dict(self.pool.verify(data))
        except PoolBusy:
            raise busy() from None
        except WorkerRefused as exc:
            raise Problem(
                422,
                "Không kiểm tra được tệp này trong giới hạn cho phép: đây không phải giấy chứng "
                "nhận do phòng thí nghiệm cấp.",
                f"This file could not be checked within the limits ({exc}): it is not a "
                "certificate issued by the lab.",
            ) from None
        except VerificationFailed:
            raise not_pdf() from None
        except CertissuerError as exc:  # a worker could not start or read the ledger
            _logger.error("PDF check failed: %s", exc)
            raise Problem(
                503,
                "Không kiểm tra được tệp lúc này. Vui lòng thử lại sau.",
                "Files cannot be checked right now. Try again later.",
                {"Retry-After": "60"},
            ) from None
        details = None
        if report.verdict in LEDGER_VERDICTS and report.number:
            # The verifier matched this file to the entry (by its hash, or by the revision
            # that the lab issued when validation data was added later).
            entry = self._verified_entry(report)
            if entry is not None:
                details = certificate_details(entry, show_customer=self.settings.web_show_customer)
        return report, details

    def signed_pdf(self, token: str) -> tuple[bytes, str]:
        """The registered signed PDF for a genuine token, checked against its SHA-256."""
        unavailable = Problem(
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
        if report.verdict not in LEDGER_VERDICTS or entry is None or not entry.pdf_path:
            raise unavailable
        try:
            data = open_store(self.ledger, self.settings.ledger_pdf_store).read(entry)
        except LedgerError:
            _logger.warning("%s: cannot read %s", entry.number, entry.pdf_path)
            raise unavailable from None
        if issued_length(data, entry.pdf_sha256 or "") is None:  # approved: issued + head's
            _logger.error("%s: %s differs from the ledger's SHA-256", entry.number, entry.pdf_path)
            raise unavailable
        return data, f"{file_stem(entry.number)}.pdf"


def lookup_fields(number: str, serial: str) -> tuple[str, str]:
    """The lookup's certificate number and serial number, stripped; 400 when one is blank."""
    number, serial = number.strip(), serial.strip()
    if not number or not serial:
        raise Problem(
            400,
            "Cần nhập cả số giấy chứng nhận và số (số sê-ri) của phương tiện đo.",
            "Both the certificate number and the instrument's serial number are needed.",
        )
    return number, serial


async def read_pdf_upload(file: UploadFile | None) -> bytes:
    """The bytes of an uploaded PDF; 400 without a file, 415 when it is not a PDF."""
    if file is None:
        raise Problem(400, "Chưa chọn tệp.", "No file was chosen.")
    head = await file.read(_MAGIC_WINDOW)
    if PDF_MAGIC not in head:
        raise not_pdf()
    return head + await file.read()
