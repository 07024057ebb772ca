"""Monitoring of the page: ``/healthz`` for the load balancer, ``/metrics`` for Prometheus.

>>> add_monitoring(app, site)  # doctest: +SKIP

* ``GET /healthz``: JSON, 200 when the ledger answers a read and the keys are loaded (the QR
  token keys and the signing trust roots), 503 otherwise, naming each check that failed. It
  says nothing a visitor could not learn from the page itself: no path, URL or key.
* ``GET /metrics``: the Prometheus text format: requests answered by route, method and status
  (``certissuer_http_requests_total``), their latency (``certissuer_http_request_duration_seconds``,
  a histogram by route) and the verdicts given by verdict and how they were asked
  (``certissuer_verdicts_total``: token, lookup, upload).

Several uvicorn workers (``certissuer serve --workers N``) each count in their own process.
``serve`` then points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the workers
start, each worker writes its counters there, and ``/metrics`` (answered by whichever worker)
adds them all up: prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from functools import wraps
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from certissuer.errors import CertissuerError
from certissuer.verify import Report

__all__ = [
    "METRICS_CONTENT_TYPE",
    "MULTIPROCESS_ENV",
    "Metrics",
    "RequestMetrics",
    "Routes",
    "add_monitoring",
    "count_verdicts",
    "health",
]

_logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client reads it when it is imported: set it before a worker starts."""

HEALTH_TIMEOUT = 5.0
"""Seconds the ledger has to answer `/healthz`'s read before it counts as unreachable."""

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Latency buckets (s): a QR scan is answered in milliseconds, an upload in seconds."""


class Routes:
    """The label a request is counted under: its route, never its raw path.

    A token in the path, or a probe's made-up path, as a label would give every request a
    series of its own (and an attacker a way to fill the memory): paths of templated routes
    count under the template (``/V/{token}``), fixed routes under their path, the rest under
    ``other``. Read from the app's routes at the first request, when all are added.
    """

    def __init__(self, routes: Sequence[Any]) -> None:
        self.routes = routes
        self._fixed: frozenset[str] | None = None
        self._templated: tuple[tuple[re.Pattern[str], str], ...] = ()

    def _load(self) -> frozenset[str]:
        fixed: set[str] = set()
        templated: list[tuple[re.Pattern[str], str]] = []
        for route in self.routes:
            path, regex = getattr(route, "path", None), getattr(route, "path_regex", None)
            if not isinstance(path, str):
                continue
            if "{" in path and isinstance(regex, re.Pattern):
                templated.append((regex, path))
            else:
                fixed.add(path)
        self._templated = tuple(templated)
        self._fixed = frozenset(fixed)
        return self._fixed

    def label(self, path: str) -> str:
        """The label for a request to `path`."""
        fixed = self._fixed if self._fixed is not None else self._load()
        if path in fixed:
            return path
        for regex, label in self._templated:
            if regex.match(path):
                return label
        return "other"


class Metrics:
    """The page's counters, in a registry of their own (one app, one set of counters)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "certissuer_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "certissuer_http_request_duration_seconds",
            "Time from a request's headers to the end of its answer, by route.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.verdicts = Counter(
            "certissuer_verdicts",
            "Verdicts given, by verdict and how they were asked (token, lookup, upload).",
            ["verdict", "via"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text format of every worker's counters (this process's alone when
        ``PROMETHEUS_MULTIPROC_DIR`` is not set)."""
        folder = os.environ.get(MULTIPROCESS_ENV)
        if not folder:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)  # type: ignore[no-untyped-call]  # unannotated
        return generate_latest(merged)


class RequestMetrics:
    """Counts every answer, the middleware's refusals included (add it outermost)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Routes) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes
        self._by_route: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """By raw path, for fixed paths only (a token makes every path new)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a crash before any answer is counted as the 500 the client gets

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            elapsed = time.perf_counter() - started
            key = (scope.get("path", ""), scope.get("method", ""), status)
            children = self._children.get(key)
            if children is None:
                children = self._children_for(*key)
            children[0].inc()
            children[1].observe(elapsed)

    def _children_for(self, path: str, method: str, status: int) -> tuple[Any, Any]:
        # prometheus_client's labels() takes a lock and builds a tuple each call: a few
        # microseconds, as much as the rest of a cached QR answer. Paths with a token are
        # many, so those are kept by label only.
        route = self.routes.label(path)
        children = self._by_route.get((route, method, status))
        if children is None:
            children = (
                self.metrics.requests.labels(route, method, str(status)),
                self.metrics.latency.labels(route),
            )
            self._by_route[(route, method, status)] = children
        if route == path and len(self._children) < 1024:  # a fixed path: skip the regexes
            self._children[(path, method, status)] = children
        return children


def count_verdicts(site: Any, metrics: Metrics) -> None:
    """Count each verdict `site` gives: its `check_token`, `lookup` and `check_upload` are
    wrapped on this instance, so every route and the API count the same way."""
    verdicts = metrics.verdicts
    check_token, lookup, check_upload = site.check_token, site.lookup, site.check_upload

    def counted(report: Report, via: str) -> None:
        verdicts.labels(str(report.verdict), via).inc()

    @wraps(check_token)
    def token_counted(*args: Any, **kwargs: Any) -> Any:
        answer = check_token(*args, **kwargs)
        counted(answer.report, "token")
        return answer

    @wraps(lookup)
    def lookup_counted(*args: Any, **kwargs: Any) -> Any:
        answer = lookup(*args, **kwargs)
        counted(answer.report, "lookup")
        return answer

    @wraps(check_upload)
    async def upload_counted(*args: Any, **kwargs: Any) -> Any:
        report, details = await check_upload(*args, **kwargs)
        counted(report, "upload")
        return report, details

    site.check_token, site.lookup, site.check_upload = token_counted, lookup_counted, upload_counted


async def health(site: Any) -> tuple[int, dict[str, Any]]:
    """`/healthz`'s status and body for `site`: each check ``ok`` or what failed."""
    checks: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            await loop.run_in_executor(site.readers, site.ledger.log_size)
        checks["ledger"] = "ok"
    except TimeoutError:
        checks["ledger"] = f"no answer within {HEALTH_TIMEOUT:g} s"
    except (CertissuerError, Exception) as exc:  # a driver's own error as well
        # The reason goes to the log, which may name the database; the page says less.
        _logger.error("healthz: ledger: %s", exc)
        checks["ledger"] = "unreachable"
    keys = site.verifier.token_keys
    checks["token_keys"] = f"ok ({len(keys)})" if keys else "none loaded"
    roots = site.verifier.trust_roots
    checks["trust_roots"] = f"ok ({len(roots)})" if roots else "none loaded"
    healthy = all(value.startswith("ok") for value in checks.values())
    body = {"status": "ok" if healthy else "fail", "pid": os.getpid(), "checks": checks}
    return (200 if healthy else 503), body


def add_monitoring(app: FastAPI, site: Any) -> Metrics:
    """Add ``/healthz``, ``/metrics`` and the counting of requests and of `site`'s verdicts to
    `app`; call it after the other middleware, so that their refusals are counted too."""
    metrics = Metrics()
    count_verdicts(site, metrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        status, body = await health(site)
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics_page() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    app.add_middleware(RequestMetrics, metrics=metrics, routes=Routes(app.routes))
    return metrics
