"""Several time-stamping authorities, tried in order, within one time budget per run (issue 17).

`TsaFailover` is the pyHanko `TimeStamper` a `Sealer` signs with from B-T up. It asks each
RFC 3161 authority of ``[signing] tsa_url`` in turn until one answers, starting with the one
that answered last in this run. Time lost to authorities that do not answer (a timeout, a
refused connection, an HTTP error) is counted against ``[signing] tsa_budget_s``: once it is
spent, the run asks no more, so a batch whose authorities are all down does not wait a timeout
per certificate and authority. Each request waits at most the budget that is left. Time spent
on answers is not counted: a run of thousands of timestamped certificates is not cut short.

When no authority answers, `NoTimestamp` says which were tried and why each failed
(``http://tsa-a/: timeout after 10.0 s, http://tsa-b/: HTTP 503``).

>>> stamper = TsaFailover(["http://tsa-a.example/", "http://tsa-b.example/"], budget=30.0)
>>> stamper.urls
('http://tsa-a.example/', 'http://tsa-b.example/')
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from asn1crypto import cms, tsp
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError, set_tsp_headers

__all__ = ["NoTimestamp", "TsaAttempt", "TsaFailover"]

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TsaAttempt:
    """One authority asked (or not) for one timestamp, and why it gave none."""

    url: str
    reason: str
    """What went wrong, in a few words: "timeout after 10.0 s", "HTTP 503",
    "connection refused", "not tried: ..."."""

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


class NoTimestamp(TimestampRequestError):
    """No time-stamping authority answered; `attempts` says which were tried and why each
    failed. A `TimestampRequestError`, so pyHanko passes it through unchanged."""

    def __init__(self, attempts: Sequence[TsaAttempt]) -> None:
        self.attempts = tuple(attempts)
        super().__init__(self.statement)

    @property
    def statement(self) -> str:
        """``url1: timeout after 10.0 s, url2: HTTP 503``."""
        return ", ".join(str(a) for a in self.attempts)


class _Failed(TimestampRequestError):
    """One authority gave no timestamp; the text is the short reason."""


class _HttpStamper(TimeStamper):
    """One RFC 3161 authority over HTTP (``requests``), with errors in a few plain words.

    pyHanko's `RequestsHTTPTimeStamper` reports every failure as "Error in communication
    with timestamp server" or "response is malformed"; a lab needs to read "timeout" or
    "HTTP 503" to know what to fix.
    """

    def __init__(self, url: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.url = url
        self.timeout = 10.0
        """Seconds for this request: `TsaFailover` sets it from what the budget has left."""

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        timeout = self.timeout

        def post() -> tsp.TimeStampResp:
            try:
                answer = requests.post(
                    self.url,
                    req.dump(),
                    headers=set_tsp_headers({}),
                    timeout=timeout,
                )
            except requests.Timeout:
                raise _Failed(f"timeout after {timeout:.1f} s") from None
            except requests.ConnectionError as exc:
                raise _Failed(_connection_failure(exc)) from None
            except (OSError, requests.RequestException) as exc:
                raise _Failed(f"request failed ({type(exc).__name__})") from None
            if answer.status_code != 200:
                raise _Failed(f"HTTP {answer.status_code}")
            kind = answer.headers.get("Content-Type", "")
            if kind != "application/timestamp-reply":
                raise _Failed(f"not a time-stamp reply (Content-Type '{kind}')")
            try:
                reply = tsp.TimeStampResp.load(answer.content)
                reply.native  # noqa: B018  (parse it all now: a damaged reply fails here)
            except (ValueError, TypeError):
                raise _Failed("malformed time-stamp reply") from None
            return reply

        return await asyncio.to_thread(post)


def _connection_failure(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    return "cannot connect" + (f" ({text[:120]})" if text else "")


class TsaFailover(TimeStamper):
    """Asks each authority of `urls` in turn, the one that answered last first.

    `timeout` bounds one request; `budget` is the seconds this object (one run) may lose to
    authorities that do not answer before it stops asking; `clock` measures them. Raises
    `NoTimestamp` when none answers.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 10.0,
        budget: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not urls:
            raise ValueError("at least one time-stamping authority is needed")
        self.urls = tuple(urls)
        self.timeout = timeout
        self.budget = budget
        self.spent = 0.0
        """Seconds lost so far to authorities that did not answer."""
        self._clock = clock
        self._stampers = [_HttpStamper(url) for url in self.urls]
        self._first = 0  # the authority that answered last
        self.answered: str | None = None
        """The URL of the authority that gave the last timestamp."""

    async def _ask(self, call: Callable[[_HttpStamper], Awaitable[_T]]) -> _T:
        order = [self._first] + [i for i in range(len(self._stampers)) if i != self._first]
        attempts: list[TsaAttempt] = []
        for i in order:
            stamper = self._stampers[i]
            left = self.budget - self.spent
            if left <= 0:
                attempts.append(
                    TsaAttempt(
                        stamper.url,
                        f"not tried: the run's {self.budget:g} s for time-stamping "
                        "authorities that do not answer is spent",
                    )
                )
                continue
            stamper.timeout = min(self.timeout, left)
            started = self._clock()
            try:
                result = await call(stamper)
            except (TimestampRequestError, OSError, ValueError) as exc:
                self.spent += self._clock() - started
                reason = str(exc) or type(exc).__name__
                _logger.debug("time-stamping authority %s failed: %s", stamper.url, reason)
                attempts.append(TsaAttempt(stamper.url, reason))
                continue
            self._first, self.answered = i, stamper.url
            return result
        raise NoTimestamp(attempts)

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        return await self._ask(lambda s: s.async_timestamp(message_digest, md_algorithm))

    async def async_dummy_response(self, md_algorithm: str) -> cms.ContentInfo:
        # Each authority keeps its own sample (pyHanko sizes signatures and gathers the TSA's
        # certificates from it); the one that answered last is asked first.
        return await self._ask(lambda s: s.async_dummy_response(md_algorithm))

    async def validation_paths(self, validation_context: Any) -> AsyncGenerator[Any, None]:
        # B-LT puts the validation data of the authority that will timestamp into the DSS:
        # the one that answers now, which the signature's timestamp then asks first.
        from pyhanko.sign import DEFAULT_MD

        await self.async_dummy_response(DEFAULT_MD)
        stamper = self._stampers[self._first]
        async for path in stamper.validation_paths(validation_context):  # type: ignore[no-untyped-call]
            yield path
