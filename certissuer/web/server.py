"""Every use of uvicorn's internals: its HTTP protocols with a deadline for request headers.

uvicorn (0.55) has no header time-out: a connection that sends part of a request line or of
its headers, then nothing (or a byte now and then), is kept open for ever, and a few thousand
such connections exhaust the server's file descriptors (slowloris). Its keep-alive time-out
runs only between requests and stops at the first byte of the next one.

`HeaderDeadline` adds one: from the moment the server waits for a request (the connection is
made, or the previous answer is sent) until that request's headers are complete, at most
`header_timeout` seconds; trickling bytes does not extend it. On expiry the connection is
closed, after a bare 408 if part of a request had arrived. Headers still incomplete after
`MAX_HEADER_BYTES` get a 431 and the connection is closed at once. The body has its own deadline in
the app (`certissuer.web.BodyDeadline`). Both HTTP implementations are covered: httptools
(uvicorn's default when it is installed, as certissuer requires) and h11.

>>> config = server_config(app, settings, log_level="info", access_log=False)  # doctest: +SKIP
>>> uvicorn.Server(config).run()  # doctest: +SKIP

The subclasses rely on uvicorn's protocol attributes ``transport``, ``loop``, ``cycle``
(``response_complete``), ``pipeline`` (httptools) and the ``on_response_complete`` hook;
``tests/test_web_abuse.py`` runs them against a real server and fails if uvicorn changes them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from certissuer.config import Settings

__all__ = [
    "MAX_HEADER_BYTES",
    "AppFactory",
    "HeaderDeadline",
    "protocol_class",
    "run_workers",
    "server_config",
]

_logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
"""Most bytes a request line and headers may take (nginx's default allows 32 KiB)."""

_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8"
    b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class HeaderDeadline:
    """The header clock of one connection: armed while the server waits for a request's
    headers, disarmed once they are complete; on expiry it closes the transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.loop, self.seconds = loop, seconds
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None
        self._client: object = None
        self.received = 0
        """Bytes of the awaited request that arrived (a 408 for a partial request)."""

    def arm(self, transport: asyncio.Transport, client: object) -> None:
        """Start the clock unless it runs already (bytes arriving never restart it)."""
        if self.seconds <= 0 or self._timer is not None or transport.is_closing():
            return
        self._transport, self._client, self.received = transport, client, 0
        self._timer = self.loop.call_later(self.seconds, self._expire)

    def disarm(self) -> None:
        """Stop the clock: the headers are complete, or the connection is gone."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def armed(self) -> bool:
        """True while the server waits for a request's headers."""
        return self._timer is not None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        _logger.info(
            "%s: no complete request headers within %g s, connection closed",
            self._client,
            self.seconds,
        )
        if self.received:
            transport.write(_REQUEST_TIMEOUT)
        transport.close()

    def overflow(self) -> None:
        """Close the connection at once: its headers are over `MAX_HEADER_BYTES`."""
        self.disarm()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        _logger.info("%s: request headers over %d bytes, refused", self._client, MAX_HEADER_BYTES)
        transport.write(_HEADERS_TOO_LARGE)
        transport.close()


def protocol_class(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools if installed, else h11) with a header deadline of
    `header_timeout` seconds (0: none, uvicorn's own protocol)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools is a dependency of certissuer
        base: type[Any] = H11Protocol
    else:
        base = HttpToolsProtocol
    if header_timeout <= 0:
        return base
    return _with_deadline(base, header_timeout)


def _with_deadline(base: type[Any], header_timeout: float) -> type[asyncio.Protocol]:
    """A subclass of uvicorn protocol `base` that enforces `header_timeout`."""

    class Protocol(base):  # type: ignore[misc]  # a base class of type Any
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._headers = HeaderDeadline(self.loop, header_timeout)

        def _awaiting_headers(self) -> bool:
            # No request in progress, and none parsed and queued behind the current one.
            idle = self.cycle is None or self.cycle.response_complete
            return bool(idle and not getattr(self, "pipeline", None))

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._headers.arm(transport, self.client)

        def data_received(self, data: bytes) -> None:
            if self._headers.armed:
                self._headers.received += len(data)
            super().data_received(data)
            if not self._awaiting_headers():
                self._headers.disarm()
            elif self._headers.received > MAX_HEADER_BYTES:
                # Headers still incomplete after this many bytes: uvicorn's httptools
                # protocol would go on collecting them for as long as the clock allows.
                self._headers.overflow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._awaiting_headers() and self.transport is not None:
                self._headers.arm(self.transport, self.client)

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers.disarm()
            super().connection_lost(exc)

    Protocol.__name__ = Protocol.__qualname__ = f"{base.__name__}WithHeaderDeadline"
    return Protocol


class _Config(uvicorn.Config):
    """uvicorn's configuration, with the header deadline's protocol made where it is loaded.

    With several workers uvicorn pickles the configuration into each worker process (spawn);
    the protocol class `protocol_class` makes cannot be pickled, so the configuration carries
    the deadline and each process builds its own class in `load`.
    """

    def __init__(self, app: Any, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout

    def load(self) -> None:
        self.http = protocol_class(self.header_timeout)
        super().load()


@dataclass(frozen=True)
class AppFactory:
    """Builds the app for `settings` inside each worker process (picklable, unlike an app)."""

    settings: Settings

    def __call__(self) -> Any:
        from certissuer.web.app import create_app

        return create_app(self.settings)


def server_config(
    app: Any, settings: Settings, *, log_level: str, access_log: bool, workers: int = 1
) -> uvicorn.Config:
    """The uvicorn configuration of `certissuer serve` for `app` and the lab's `settings`.

    It listens on ``[web] host`` and ``port``, believes X-Forwarded-For only from
    ``[web] trusted_proxies``, sends no Server header, and cuts a client that does not send a
    request's headers within ``[web] header_timeout`` seconds. With `workers` over 1, `app`
    must be an `AppFactory` (each worker process builds its own app); see `run_workers`.
    """
    proxies = settings.web_trusted_proxies.strip()
    return _Config(
        app,
        header_timeout=settings.web_header_timeout,
        factory=isinstance(app, AppFactory),
        workers=workers,
        host=settings.web_host,
        port=settings.web_port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        server_header=False,
        log_level=log_level,
        access_log=access_log,
    )


def run_workers(config: uvicorn.Config) -> None:
    """Serve with ``config.workers`` worker processes on one listening socket, until a
    signal stops them (uvicorn's supervisor: it restarts a worker that dies).

    The workers' counters go to a fresh folder named by ``PROMETHEUS_MULTIPROC_DIR``, which
    ``/metrics`` adds up (`certissuer.web.monitor`), and which is removed afterwards.
    """
    from uvicorn.supervisors import Multiprocess

    from certissuer.web.monitor import MULTIPROCESS_ENV

    folder = tempfile.mkdtemp(prefix="certissuer-metrics-", dir=os.environ.get("RUNTIME_DIRECTORY"))
    os.environ[MULTIPROCESS_ENV] = folder
    try:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
