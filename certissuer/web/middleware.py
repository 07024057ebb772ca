"""The page's guards, as plain ASGI middleware: body size and deadline, rate, uploads, headers.

Plain ASGI is cheaper than Starlette's BaseHTTPMiddleware, and it sees the raw body: a body
over the limit is refused before it is read in full. Each guard answers a refusal with a
`Problem` rendered by the function the app passes in (JSON under ``/api/``, HTML elsewhere).

>>> app.add_middleware(BodyLimit, limit=10 << 20, render=pages.render_problem)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "BodyDeadline",
    "BodyLimit",
    "Problem",
    "RateLimit",
    "RenderProblem",
    "SecurityHeaders",
    "UploadLimit",
    "client_key",
    "send_problem",
]

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_UPLOAD_COST = 5
"""An upload costs this many requests of the client's rate (it keeps a worker busy)."""
_LOOKUP_PATHS = frozenset({"/lookup", "/api/v1/lookup"})
"""A lookup by number and serial number costs as much as an upload: guesses come dear."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; "
    "manifest-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
"""Scripts only from this site's files (no inline script or style, no eval): the offline check
and its service worker; no framing; forms post and scripts fetch only to this site."""

# -- refusals -------------------------------------------------------------------------------


@dataclass
class Problem(Exception):
    """A request refused with an HTTP status and a bilingual message."""

    status: int
    vi: str
    en: str
    headers: dict[str, str] = field(default_factory=dict)


RenderProblem = Callable[[Problem, str], tuple[bytes, str]]
"""Renders a problem for a path: (body, content type); JSON under /api/, HTML elsewhere."""


async def send_problem(send: Send, problem: Problem, path: str, render: RenderProblem) -> None:
    """Answer `problem` through `send` and close the connection."""
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

    def __init__(self, app: ASGIApp, *, limit: int, render: RenderProblem) -> None:
        self.app, self.limit, self.render = app, limit, render

    def _problem(self) -> Problem:
        mb = self.limit / (1024 * 1024)
        return Problem(
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
                    bad = Problem(400, "Yêu cầu không hợp lệ.", "Malformed Content-Length.")
                    await send_problem(send, bad, path, self.render)
                    return
                if declared > self.limit:
                    await send_problem(send, self._problem(), path, self.render)
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
            await send_problem(send, self._problem(), path, self.render)


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


def _too_many(wait: int) -> Problem:
    return Problem(
        429,
        f"Quá nhiều yêu cầu. Vui lòng thử lại sau {wait} giây.",
        f"Too many requests. Try again in {wait} s.",
        {"Retry-After": str(wait)},
    )


class RateLimit:
    """A token bucket per client address: `per_minute` requests a minute, `burst` at once.

    Over it: 429 with Retry-After (whole seconds until the request would be allowed). An upload
    or a lookup by number costs `_UPLOAD_COST` requests. Clients are counted by `client_key`
    (IPv6 by /64). The buckets live in memory, one process; behind a proxy, configure
    ``[web] trusted_proxies`` so the client's address is the real one.
    """

    _MAX_CLIENTS = 10_000

    def __init__(self, app: ASGIApp, *, per_minute: int, burst: int, render: RenderProblem) -> None:
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
        dear = scope["method"] == "POST" or scope.get("path") in _LOOKUP_PATHS
        cost = min(float(_UPLOAD_COST if dear else 1), self.burst)
        if tokens < cost:
            self.buckets[key] = (tokens, now)
            wait = max(1, math.ceil((cost - tokens) / self.rate))
            await send_problem(send, _too_many(wait), scope.get("path", ""), self.render)
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

    def __init__(self, app: ASGIApp, *, per_client: int, render: RenderProblem) -> None:
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
            problem = Problem(
                429,
                f"Địa chỉ của bạn đang gửi quá nhiều tệp cùng lúc. Vui lòng thử lại sau {wait} "
                "giây.",
                f"Too many uploads at once from your address. Try again in {wait} s.",
                {"Retry-After": str(wait)},
            )
            await send_problem(send, problem, scope.get("path", ""), self.render)
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

    def __init__(self, app: ASGIApp, *, seconds: float, render: RenderProblem) -> None:
        self.app, self.seconds, self.render = app, seconds, render

    def _problem(self) -> Problem:
        return Problem(
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
            await send_problem(send, self._problem(), scope.get("path", ""), self.render)


class SecurityHeaders:
    """Adds the security headers to every response, and turns a crash into a plain 500."""

    def __init__(self, app: ASGIApp, *, hsts: bool, render: RenderProblem) -> None:
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
            problem = Problem(500, "Lỗi máy chủ.", "Internal server error.")
            await send_problem(send_with_headers, problem, scope.get("path", ""), self.render)
