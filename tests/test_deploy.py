"""Deployment: Debian's nginx with `deploy/nginx.conf`, and Caddy with `deploy/Caddyfile`, each in
front of `certissuer serve --workers 2`; the systemd unit; `/healthz` and `/metrics`.

Each proxy runs as a child of the test (in the foreground, files under a temporary folder)
with the sample configuration adapted only where a test must: its ports, certificate paths, a
shorter header time-out and a smaller body limit. Linux routes all of 127.0.0.0/8 to the
loopback interface, so a client socket bound to 127.0.0.N is a distinct client address as the
proxy sees it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from certissuer.config import Settings
from certissuer.issue import load_token_key
from certissuer.ledger import Ledger
from certissuer.web.monitor import MULTIPROCESS_ENV

from . import test_web
from ._serve import stop
from .test_web import Lab, _web, token

lab = test_web.lab  # the module's lab: issued certificates on a SQLite ledger (a fixture)

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx")
HEADER_TIMEOUT = 2
"""nginx's client_header_timeout in the test (the sample says 10 s)."""
RATE_BURST = 3
WORKERS = 2


# -- the pieces -------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1 and its key, as nginx reads them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.pem", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def adapt_nginx(sample: str, *, http: int, https: int, upstream: int, cert: Path, key: Path) -> str:
    """The sample configuration with the test's ports, files and shorter limits; each
    replacement must match exactly once, so that the test follows the sample."""
    changes = [
        ("    listen 80;\n", f"    listen 127.0.0.1:{http};\n"),
        ("    listen [::]:80;\n", ""),
        ("    listen 443 ssl http2;\n", f"    listen 127.0.0.1:{https} ssl http2;\n"),
        ("    listen [::]:443 ssl http2;\n", ""),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};"),
        ("/etc/letsencrypt/live/verify.example.vn/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/verify.example.vn/privkey.pem", str(key)),
        ("client_header_timeout 10s;", f"client_header_timeout {HEADER_TIMEOUT}s;"),
        ("client_max_body_size 10m;", "client_max_body_size 1m;"),
    ]
    for old, new in changes:
        assert sample.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
        sample = sample.replace(old, new)
    return sample


def _nginx_main(prefix: Path, site: Path) -> str:
    """nginx.conf around the site: everything under `prefix`, in the foreground."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    return f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
{temp}
    uwsgi_temp_path {prefix / "uwsgi"};
    scgi_temp_path {prefix / "scgi"};
    include {site};
}}
"""


def _profile(lab: Lab, path: Path) -> Path:
    s: Settings = lab.settings
    path.write_text(
        f"""
[lab]
code = "{s.lab_code}"
[signing]
trust_roots = ["{s.signing_trust_roots[0]}"]
[token]
key = "{s.token_key}"
url_base = "{s.token_url_base}"
[ledger]
url = "{s.ledger_url}"
[web]
pdf_workers = 1
max_upload = 1048576
rate_limit = 6
rate_burst = {RATE_BURST}
trusted_proxies = "127.0.0.1"
""",
        encoding="utf-8",
    )
    return path


_STARTED = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+) ")


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data


_PROBES = 0


@dataclass
class Served:
    """`certissuer serve --workers 2` on `port`, its log and its runtime folder."""

    port: int
    log: Path
    run: Path

    def direct(self, path: str) -> tuple[int, bytes]:
        """GET `path` from `certissuer serve` itself, bypassing the proxy, each time from
        another address (127.0.1.N): the monitoring reads stay clear of the rate limit."""
        global _PROBES
        _PROBES += 1
        source = f"127.0.{1 + _PROBES // 250}.{1 + _PROBES % 250}"
        with socket.create_connection(("127.0.0.1", self.port), 30, (source, 0)) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            answer = read_until_closed(sock)
        return _status(answer), answer.split(b"\r\n\r\n", 1)[1]


@dataclass
class Deployed:
    """`proxy` (nginx or Caddy) on `https` (TLS, trusting `ca`) in front of `served`."""

    proxy: str
    https: int
    ca: Path
    served: Served
    net: int
    """Clients of this proxy's tests come from 127.0.`net`.N: the proxies share the server,
    and its rate limits are per address."""

    def addr(self, n: int) -> str:
        return f"127.0.{self.net}.{n}"

    def connect(self, source: str) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.https), 30, (source, 0))
        context = ssl.create_default_context(cafile=str(self.ca))
        context.set_alpn_protocols(["http/1.1"])
        return context.wrap_socket(raw, server_hostname="localhost")

    def request(self, raw: bytes, source: str) -> tuple[int, bytes]:
        """Send `raw` through the proxy from `source`; the status and the whole answer."""
        with self.connect(source) as sock:
            sock.sendall(raw)
            answer = read_until_closed(sock)
        return _status(answer), answer

    def direct(self, path: str) -> tuple[int, bytes]:
        return self.served.direct(path)


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def _get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}\r\n".encode()


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("deploy")
    profile = _profile(lab, folder / "lab.toml")
    log = folder / "serve.log"
    run = folder / "run"  # as systemd's RuntimeDirectory= gives it
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RUNTIME_DIRECTORY": str(run)}
    env.pop(MULTIPROCESS_ENV, None)
    args = [sys.executable, "-m", "certissuer", "--config", str(profile), "serve"]
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [*args, "--port", "0", "--workers", str(WORKERS)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not (started := _STARTED.search(log.read_bytes())):
            if serve.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"certissuer serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        here = Served(int(started.group(1)), log, run)
        while True:  # both workers up: uvicorn logs the port before they are
            try:
                if here.direct("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if serve.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"certissuer serve is not up:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        yield here
    finally:
        stop(serve)
    # The workers' counters lived in the runtime folder, and went with the server.
    assert list(run.iterdir()) == []


def _start_nginx(folder: Path, upstream: int, cert: Path, key: Path, https: int) -> list[str]:
    if NGINX is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing (.ci/run installs it)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    site = folder / "certissuer.conf"
    sample = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    site.write_text(
        adapt_nginx(sample, http=_free_port(), https=https, upstream=upstream, cert=cert, key=key)
    )
    main = folder / "nginx.conf"
    main.write_text(_nginx_main(folder, site))
    where = ["-p", str(folder), "-e", str(folder / "error.log"), "-c", str(main)]
    return [NGINX, *where, "-g", "daemon off;"]


def adapt_caddy(sample: str, *, https: int, upstream: int, cert: Path, key: Path) -> str:
    """The sample Caddyfile with the test's address, certificate and shorter limits."""
    changes = [
        ("{\n\tservers {", "{\n\tadmin off\n\tauto_https disable_redirects\n\tservers {"),
        (
            "verify.example.vn {\n",
            f"https://localhost:{https} {{\n\tbind 127.0.0.1\n\ttls {cert} {key}\n",
        ),
        ("read_header 10s", f"read_header {HEADER_TIMEOUT}s"),
        (
            "int({http.request.header.Content-Length}) > 10485760",
            "int({http.request.header.Content-Length}) > 1048576",
        ),
        ("max_size 10MB", "max_size 1MB"),
    ]
    for old, new in changes:
        assert sample.count(old) == 1, f"deploy/Caddyfile no longer has {old!r}"
        sample = sample.replace(old, new)
    page = "reverse_proxy 127.0.0.1:8080"
    assert sample.count(page) == 2, "deploy/Caddyfile: the page's address changed"
    return sample.replace(page, f"reverse_proxy 127.0.0.1:{upstream}")


def _start_caddy(folder: Path, upstream: int, cert: Path, key: Path, https: int) -> list[str]:
    caddy = shutil.which("caddy")
    if caddy is None:
        if os.environ.get("CI"):
            pytest.fail("caddy is missing (.ci/run installs it)")
        pytest.skip("caddy is not installed (apt-get install caddy)")
    sample = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    config = folder / "Caddyfile"
    config.write_text(adapt_caddy(sample, https=https, upstream=upstream, cert=cert, key=key))
    return [caddy, "run", "--adapter", "caddyfile", "--config", str(config)]


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def deployed(
    request: pytest.FixtureRequest, served: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    proxy: str = request.param
    folder = tmp_path_factory.mktemp(proxy)
    cert, key = _self_signed(folder)
    https = _free_port()
    start = _start_nginx if proxy == "nginx" else _start_caddy
    args = start(folder, served.port, cert, key, https)
    home = {"HOME": str(folder), "XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder)}
    with (folder / "proxy.log").open("wb") as out:
        process = subprocess.Popen(
            args, env={**os.environ, **home}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while not _listening(https):
            if process.poll() is not None or time.monotonic() > deadline:
                log = (folder / "proxy.log").read_text(errors="replace")
                pytest.fail(f"{proxy} did not start:\n{log}")
            time.sleep(0.1)
        yield Deployed(proxy, https, cert, served, net=3 if proxy == "nginx" else 4)
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _samples(metrics: bytes, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for family in text_string_to_metric_families(metrics.decode()):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


# -- through nginx ----------------------------------------------------------------------------


def test_the_page_answers_through_the_proxy_over_tls(deployed: Deployed, lab: Lab) -> None:
    status, answer = deployed.request(_get("/"), deployed.addr(11))
    assert status == 200
    assert b"<form" in answer and b'action="verify"' in answer
    status, answer = deployed.request(_get(f"/V/{token(lab.ver)}"), deployed.addr(11))
    assert status == 200
    assert lab.ver.number.encode() in answer
    assert b"content-security-policy" in answer.lower()


def test_plain_http_is_sent_to_the_https_address_not_the_hosts(deployed: Deployed) -> None:
    if deployed.proxy != "nginx":
        pytest.skip("Caddy's own redirect (automatic HTTPS) is not part of the sample")
    site = (deployed.ca.parent / "certissuer.conf").read_text()
    http = int(re.findall(r"listen 127\.0\.0\.1:(\d+);", site)[0])
    with socket.create_connection(("127.0.0.1", http), 10) as sock:
        sock.sendall(b"GET /V/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock)
    assert _status(answer) == 301
    assert b"Location: https://verify.example.vn/V/x\r\n" in answer
    assert b"evil.example" not in answer


def test_an_upload_over_the_limit_gets_413_from_the_proxy(deployed: Deployed) -> None:
    before = _samples(deployed.direct("/metrics")[1], "certissuer_http_requests_total")
    head = (
        b"POST /verify HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/pdf\r\nContent-Length: %d\r\n\r\n" % (2 * 1024 * 1024)
    )
    with deployed.connect(deployed.addr(12)) as sock:
        sock.sendall(head)
        # The proxy may answer and close before it takes the start of the body.
        with contextlib.suppress(OSError):
            sock.sendall(b"%PDF-1.7\n" + b"0" * 65536)
        answer = read_until_closed(sock)
    assert _status(answer) == 413
    # The proxy refused it alone: the page counted no request (only this /metrics read).
    after = _samples(deployed.direct("/metrics")[1], "certissuer_http_requests_total")
    assert after == before + 1


def test_the_rate_limit_counts_the_address_the_proxy_forwards(deployed: Deployed) -> None:
    # A client forges a new X-Forwarded-For each time: the proxy replaces it, the page counts
    # every request against the client's address, and after each worker's burst it is 429.
    statuses = [
        deployed.request(_get("/api/v1/lab", f"X-Forwarded-For: 10.0.0.{n}"), deployed.addr(13))[0]
        for n in range(20)
    ]
    assert statuses[0] == 200
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= WORKERS * RATE_BURST + 2, statuses  # + a refill or two
    # Another address has its own budget: the proxy forwarded each client's own address.
    assert [deployed.request(_get("/api/v1/lab"), deployed.addr(14))[0] for _ in range(2)] == [
        200
    ] * 2


def test_a_client_trickling_its_headers_is_cut_off(deployed: Deployed) -> None:
    request = _get("/", *[f"X-Padding-{n}: {'a' * 20}" for n in range(20)])
    with deployed.connect(deployed.addr(15)) as sock:
        started = time.monotonic()
        sock.settimeout(0.2)
        closed = None
        for byte in request[:-4]:  # never the blank line that ends the head
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1024) == b"":
                    closed = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # nothing to read yet: still open
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                closed = time.monotonic() - started
                break
            if time.monotonic() - started > 4 * HEADER_TIMEOUT:
                break
    assert closed is not None, f"{deployed.proxy} kept a trickling client past its time-out"
    assert HEADER_TIMEOUT - 0.5 <= closed <= HEADER_TIMEOUT + 2, closed


# -- monitoring, with two workers ---------------------------------------------------------------


def test_healthz_says_ok_with_every_check(served: Served) -> None:
    status, body = served.direct("/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["checks"]["ledger"] == "ok"
    assert health["checks"]["token_keys"].startswith("ok")
    assert health["checks"]["trust_roots"].startswith("ok")


def test_metrics_add_up_every_workers_counts(deployed: Deployed, lab: Lab) -> None:
    def read() -> tuple[float, float]:
        text = deployed.direct("/metrics")[1]
        return (
            _samples(text, "certissuer_http_requests_total", route="/api/v1/lab"),
            _samples(text, "certissuer_verdicts_total", via="token"),
        )

    requests, verdicts = read()
    for _ in range(4):
        assert deployed.request(_get("/api/v1/lab"), deployed.addr(16))[0] in (200, 429)
    assert deployed.request(_get(f"/V/{token(lab.ver)}"), deployed.addr(17))[0] == 200
    # Whichever worker answers /metrics, it reports both workers' counts.
    for _ in range(3):
        assert read() == (requests + 4, verdicts + 1)
    text = deployed.direct("/metrics")[1].decode()
    assert "certissuer_http_request_duration_seconds_bucket" in text
    # Each worker keeps its counts in the runtime folder that systemd (here the test) gives.
    (counters,) = deployed.served.run.glob("certissuer-metrics-*")
    assert 1 <= len(list(counters.glob("counter_*.db"))) <= WORKERS  # one file per worker pid
    assert 'route="/V/{token}"' in text and token(lab.ver) not in text


# -- the other samples ------------------------------------------------------------------------


def test_the_caddyfile_is_valid_for_caddy(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy): the Caddyfile is unchecked")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    args = [caddy, "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "Caddyfile")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr
    # The page's limits, in the proxy too.
    text = (DEPLOY / "Caddyfile").read_text()
    assert "max_size 10MB" in text and "read_header 10s" in text


def test_the_systemd_unit_is_valid_and_hardened(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit is unchecked")
    text = (DEPLOY / "certissuer.service").read_text()
    exec_start = re.search(r"^ExecStart=(\S+) serve --workers (\d+)$", text, re.M)
    assert exec_start is not None
    for line in ("ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/"):
        assert line in text
    # systemd-analyze wants the program to exist: this interpreter stands in for it.
    unit = tmp_path / "certissuer.service"
    unit.write_text(text.replace(exec_start.group(1), sys.executable))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


# -- metrics labels --------------------------------------------------------------------------


def test_metrics_label_routes_never_raw_paths(lab: Lab) -> None:
    # Made-up paths and tokens must not become series of their own: a prober could otherwise
    # fill the server's memory (and /metrics) one label at a time.
    from certissuer.web import create_app

    with TestClient(create_app(_web(lab.settings))) as client:
        probes = [f"/static/probe-{n}.js" for n in range(5)] + ["/api/v1/probe", "/V/a/b/c"]
        for path in probes:
            assert client.get(path).status_code == 404
        assert client.get(f"/V/{token(lab.ver)}").status_code == 200
        assert client.get("/api/v1/lab").status_code == 200
        text = client.get("/metrics").text
    assert _samples(text.encode(), "certissuer_http_requests_total", route="other") == 7
    assert _samples(text.encode(), "certissuer_http_requests_total", route="/V/{token}") == 1
    assert _samples(text.encode(), "certissuer_http_requests_total", route="/api/v1/lab") == 1
    assert "probe" not in text and token(lab.ver) not in text
    assert _samples(text.encode(), "certissuer_verdicts_total", verdict="valid", via="token") == 1


# -- /healthz when the ledger goes away ---------------------------------------------------------


class Forwarder:
    """A TCP relay to PostgreSQL that the test can cut, as a network failure would."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.mark.postgres
def test_healthz_is_503_naming_the_ledger_when_it_is_unreachable(lab: Lab) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from certissuer.web import create_app

    base = os.environ.get("CERTISSUER_TEST_PG_URL")
    if not base:
        pytest.skip("no PostgreSQL: set CERTISSUER_TEST_PG_URL to run the PostgreSQL tests")
    url = make_url(base)
    relay = Forwarder((url.host or "127.0.0.1", url.port or 5432))
    schema = f"t_health_{os.getpid()}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        relayed = url.set(port=relay.port).render_as_string(hide_password=False)
        relayed += ("&" if "?" in relayed else "?") + f"options=-csearch_path%3D{schema}"
        settings = _web(lab.settings, ledger_url=relayed)
        Ledger.open(relayed, ledger_key=load_token_key(settings)).close()
        with TestClient(create_app(settings)) as client:
            ok = client.get("/healthz")
            assert ok.status_code == 200, ok.text
            assert ok.json()["checks"]["ledger"] == "ok"
            relay.cut()
            down = client.get("/healthz")
            assert down.status_code == 503
            body = down.json()
            assert body["status"] == "fail"
            assert body["checks"]["ledger"] == "unreachable"
            assert body["checks"]["token_keys"].startswith("ok")  # only what failed fails
            assert str(relay.port) not in down.text and schema not in down.text  # no URL
            metrics = client.get("/metrics").text
            assert 'route="/healthz",status="503"' in metrics
    finally:
        relay.cut()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
