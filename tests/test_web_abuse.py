"""The page under abuse: token spellings, upload floods, slow clients, against a real server.

The slow-client and flood tests run `certissuer serve` itself (uvicorn, real sockets) on a free
loopback port. Linux routes all of 127.0.0.0/8 to the loopback interface, so a client socket
bound to 127.0.0.N is a distinct client address as the server sees it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from certissuer.config import Settings
from certissuer.ledger import Ledger

from . import test_web
from ._serve import start_serve, stop
from .test_web import Lab, _web, token, xref_flood_pdf

lab = test_web.lab  # the module's lab: issued certificates on a SQLite ledger (a fixture)

ROOT = Path(__file__).resolve().parent.parent

# -- one spelling per token -------------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def lenient(text: str) -> bytes | None:
    """What a forgiving base64url decoder makes of `text` (None if even it refuses)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _other_spellings(tok: str) -> list[str]:
    """Other spellings of `tok` (as they arrive in the URL path) that a lenient decoder reads
    as `tok`'s very bytes."""
    spaces = {0: 4, 2: 3, 3: 2}[len(tok) % 4]  # so that the lenient decoder's padding fits
    spellings = [
        tok + "=" * (-len(tok) % 4 or 4),
        tok[:20] + " " * spaces + tok[20:],
        tok[:30] + "\n" * spaces + tok[30:],
    ]
    if "-" in tok:
        spellings.append(tok.replace("-", "+"))
    unused = {2: 4, 3: 2}.get(len(tok) % 4)
    if unused:
        last = ALPHABET.index(tok[-1])
        spellings.append(tok[:-1] + ALPHABET[last | ((1 << unused) - 1)])
    assert all(lenient(s) == lenient(tok) for s in spellings)
    return [s for s in spellings if s != tok]


def test_other_spellings_of_a_token_are_refused_without_the_ledger(lab: Lab) -> None:
    from certissuer.web import create_app

    statements: list[str] = []
    counted = Ledger.open_readonly(lab.settings.ledger_url)
    event.listen(counted.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with TestClient(create_app(_web(lab.settings), ledger=counted)) as c:
        for issued in (lab.ver, lab.cal):
            good = token(issued)
            others = _other_spellings(good)
            assert len(others) >= 3
            for other in others:
                path = quote(other, safe="+=")
                page = c.get(f"/v/{path}")
                assert page.status_code == 200 and 'data-verdict="altered"' in page.text, other
                assert issued.number not in page.text
                body = c.get(f"/api/v1/verdict/{path}").json()
                assert body["verdict"] == "altered" and body["certificate"] is None, other
        assert statements == [], "a token not in its one spelling reached the ledger"
        assert c.get(f"/api/v1/verdict/{token(lab.ver)}").json()["verdict"] == "valid"
        assert statements


# -- client addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
    ],
)
def test_client_key_buckets_ipv6_by_64(address: str, key: str) -> None:
    from certissuer.web import client_key

    assert client_key({"client": (address, 1234)}) == key


def test_rate_limit_counts_an_ipv6_64_as_one_client(lab: Lab) -> None:
    from certissuer.web import create_app

    app = create_app(_web(lab.settings, web_rate_limit=60, web_rate_burst=3))

    def client(address: str) -> TestClient:
        return TestClient(app, client=(address, 4000))

    a, b = client("2001:db8:7:7::1"), client("2001:db8:7:7:1234:5678:9abc:def0")
    with a, b, client("2001:db8:7:8::1") as other:
        assert [a.get("/api/v1/lab").status_code for _ in range(3)] == [200] * 3
        # Another address of the same /64: the same bucket, already empty.
        r = b.get("/api/v1/lab")
        assert r.status_code == 429 and r.json()["detail"].startswith("Too many requests")
        # The neighbouring /64 is another subscriber.
        assert other.get("/api/v1/lab").status_code == 200


def test_upload_limit_counts_an_ipv6_64_as_one_client() -> None:
    from certissuer.web import UploadLimit

    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # an upload being checked
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limit = UploadLimit(app, per_client=2, render=lambda p, _path: (p.en.encode(), "text/plain"))

    async def post(address: str) -> int:
        sent: list[dict[str, Any]] = []

        async def send(message: Any) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/api/v1/verify", "headers": []}
        await limit({**scope, "client": (address, 1)}, receive, send)
        status: int = sent[0]["status"]
        return status

    async def flood() -> tuple[int, list[int]]:
        held = [asyncio.create_task(post(f"2001:db8:5:5::{i}")) for i in (1, 2)]
        held.append(asyncio.create_task(post("2001:db8:5:6::1")))  # another /64
        await asyncio.sleep(0.05)
        # The third upload from one /64 is answered at once (admitted, it would wait).
        same_64 = await asyncio.wait_for(post("2001:db8:5:5:ffff:ffff:ffff:ffff"), 5)
        assert not any(task.done() for task in held)
        release.set()
        return same_64, list(await asyncio.gather(*held))

    same_64, others = asyncio.run(flood())
    assert same_64 == 429 and others == [200, 200, 200]
    assert limit.active == {}


# -- a real server --------------------------------------------------------------------------

HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 2.5
PDF_TIMEOUT = 1.5


@dataclass
class Served:
    """`certissuer serve` in a child process."""

    port: int
    process: subprocess.Popen[bytes]

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", self.port))
        return sock

    def request(self, raw: bytes, source: str = "127.0.0.1") -> bytes:
        """Send `raw` from `source` and read the whole answer (the server closes after it)."""
        with self.connect(source) as sock:
            sock.sendall(raw)
            return read_until_closed(sock)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


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
pdf_timeout = {PDF_TIMEOUT}
header_timeout = {HEADER_TIMEOUT}
body_timeout = {BODY_TIMEOUT}
upload_concurrency = 2
max_upload = 1048576
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serve")
    profile = _profile(lab, folder / "lab.toml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process, port = start_serve(profile, folder / "serve.log", env=env)
    try:
        yield Served(port, process)
    finally:
        stop(process)


def _get(path: str = "/api/v1/lab", *, keep_alive: bool = False) -> bytes:
    connection = b"" if keep_alive else b"Connection: close\r\n"
    return b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), connection)


def _closed_after(sock: socket.socket, started: float) -> tuple[float, bytes]:
    """Seconds from `started` until the server closes `sock`, and what it sent."""
    answer = read_until_closed(sock)
    return time.monotonic() - started, answer


# -- slow clients -----------------------------------------------------------------------------


def test_a_normal_request_is_answered(served: Served) -> None:
    answer = served.request(_get())
    assert answer.startswith(b"HTTP/1.1 200") and b'"domain"' in answer
    # Two requests on one kept-alive connection: the header clock restarts for the second.
    with served.connect() as sock:
        sock.sendall(_get(keep_alive=True))
        time.sleep(HEADER_TIMEOUT * 0.6)
        sock.sendall(_get(keep_alive=True))
        time.sleep(HEADER_TIMEOUT * 0.6)
        sock.sendall(_get())
        answers = read_until_closed(sock)
    assert answers.count(b"HTTP/1.1 200") == 3, answers[:300]


def test_a_client_that_stalls_in_its_headers_is_cut_at_the_header_timeout(
    served: Served,
) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/v1/lab HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elapsed, answer = _closed_after(sock, started)
    print(f"stalled headers: closed after {elapsed:.2f} s")
    assert HEADER_TIMEOUT - 0.2 <= elapsed < HEADER_TIMEOUT + 1.5, elapsed
    assert answer.startswith(b"HTTP/1.1 408")

    # Connected, nothing sent at all: closed too (silently).
    with served.connect() as sock:
        started = time.monotonic()
        elapsed, answer = _closed_after(sock, started)
    assert HEADER_TIMEOUT - 0.2 <= elapsed < HEADER_TIMEOUT + 1.5 and answer == b""


def test_a_client_that_trickles_its_headers_is_cut_at_the_header_timeout(
    served: Served,
) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/v1/lab HTTP/1.1\r\nHost: x\r\n")
        closed = None
        while time.monotonic() - started < HEADER_TIMEOUT + 5:
            try:
                sock.sendall(b"X-A: b\r\n")  # a header line every 0.1 s, never the end
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - started
                break
            if select.select([sock], [], [], 0.1)[0]:
                closed, _ = _closed_after(sock, started)
                break
    print(f"trickled headers: closed after {closed} s")
    assert closed is not None and HEADER_TIMEOUT - 0.2 <= closed < HEADER_TIMEOUT + 1.5, closed


def test_endless_headers_are_refused_at_64_kib(served: Served) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/v1/lab HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        try:
            while sent < 16 << 20:
                sock.sendall(b"X-Long: " + b"a" * 1000 + b"\r\n")
                sent += 1010
                if select.select([sock], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        elapsed, answer = _closed_after(sock, started)
    print(f"endless headers: refused after {sent} bytes, {elapsed:.2f} s")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < 8 << 20 and elapsed < HEADER_TIMEOUT - 0.5


def _upload_head(length: int, path: str = "/api/v1/verify") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n"
        % (path.encode(), length)
    )


def _multipart(pdf: bytes) -> bytes:
    return (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + pdf + b"\r\n--b--\r\n"
    )


def test_a_client_that_trickles_its_body_is_cut_at_the_body_timeout(served: Served) -> None:
    body = _multipart(b"%PDF-1.7\n" + b"0" * 4000)
    with served.connect() as sock:
        sock.sendall(_upload_head(len(body)))
        started = time.monotonic()
        sent = 0
        while sent < len(body) and time.monotonic() - started < BODY_TIMEOUT + 5:
            try:
                sock.sendall(body[sent : sent + 10])  # 10 bytes every 0.1 s
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 10
            if select.select([sock], [], [], 0.1)[0]:
                break
        elapsed, answer = _closed_after(sock, started)
    print(f"trickled body: closed after {elapsed:.2f} s, {sent} of {len(body)} bytes sent")
    assert BODY_TIMEOUT - 0.2 <= elapsed < BODY_TIMEOUT + 1.5, elapsed
    assert answer.startswith(b"HTTP/1.1 408") and b"sent too slowly" in answer
    assert b"connection: close" in answer.lower()

    # A body that stops half-way is cut at the same deadline.
    with served.connect() as sock:
        sock.sendall(_upload_head(len(body)) + body[:100])
        started = time.monotonic()
        elapsed, answer = _closed_after(sock, started)
    assert BODY_TIMEOUT - 0.2 <= elapsed < BODY_TIMEOUT + 1.5, elapsed
    assert answer.startswith(b"HTTP/1.1 408")


# -- upload floods ----------------------------------------------------------------------------


def _upload(served: Served, pdf: bytes, source: str, out: list[bytes]) -> None:
    body = _multipart(pdf)
    out.append(served.request(_upload_head(len(body)) + body, source))


def _stalled_upload(served: Served, source: str) -> socket.socket:
    """An upload from `source` whose body never completes: in progress until cut."""
    sock = served.connect(source)
    sock.sendall(_upload_head(200_000) + _multipart(b"%PDF-1.7\n")[:80])
    return sock


def test_concurrent_uploads_from_one_address_are_capped(lab: Lab, served: Served) -> None:
    genuine = lab.ver.path.read_bytes()
    flooder, inspector = "127.0.0.20", "127.0.0.21"
    stalled = [_stalled_upload(served, flooder) for _ in range(2)]
    time.sleep(0.3)
    # Within the per-minute rate (a burst of 6 uploads), but a third at once: refused.
    started = time.monotonic()
    answers: list[bytes] = []
    _upload(served, genuine, flooder, answers)
    assert time.monotonic() - started < 2
    assert answers[0].startswith(b"HTTP/1.1 429"), answers[0][:200]
    assert b"retry-after: 5" in answers[0].lower()
    assert b"Too many uploads at once from your address" in answers[0]
    assert "Địa chỉ của bạn đang gửi quá nhiều tệp".encode() in answers[0]
    # A made-up X-Forwarded-For changes nothing: no proxy is trusted ([web] trusted_proxies).
    body = _multipart(genuine)
    spoofed = _upload_head(len(body)).replace(
        b"\r\n\r\n", b"\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"
    )
    assert served.request(spoofed + body, flooder).startswith(b"HTTP/1.1 429")
    page = served.request(_upload_head(len(_multipart(genuine)), "/verify") + _multipart(genuine),
                          flooder)  # fmt: skip
    assert page.startswith(b"HTTP/1.1 429") and b"text/html" in page
    assert "Vui lòng thử lại sau 5 giây".encode() in page
    # Another address is answered meanwhile.
    _upload(served, genuine, inspector, answers)
    assert answers[1].startswith(b"HTTP/1.1 200") and b'"verdict":"valid"' in answers[1]
    # The stalled ones end at the body deadline; then the address may upload again.
    for sock in stalled:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408")
        sock.close()
    _upload(served, genuine, flooder, answers)
    assert answers[2].startswith(b"HTTP/1.1 200"), answers[2][:200]


def test_a_flood_from_many_addresses_leaves_an_inspector_answered(lab: Lab, served: Served) -> None:
    # Twelve slow uploads from six addresses (each at its limit of two), for one worker that
    # spends the time limit on each: 18 s of work. An inspector's upload arrives after them.
    heavy = xref_flood_pdf(600_000)
    genuine = lab.ver.path.read_bytes()
    flood: list[bytes] = []
    threads = [
        threading.Thread(target=_upload, args=(served, heavy, f"127.0.0.{40 + i // 2}", flood))
        for i in range(12)
    ]
    for t in threads:
        t.start()
        time.sleep(0.02)
    time.sleep(0.5)
    started = time.monotonic()
    mine: list[bytes] = []
    _upload(served, genuine, "127.0.0.99", mine)
    elapsed = time.monotonic() - started
    for t in threads:
        t.join(60)
    print(f"inspector answered in {elapsed:.2f} s during the flood")
    assert mine[0].startswith(b"HTTP/1.1 200") and b'"verdict":"valid"' in mine[0], mine[0][:300]
    # Behind the whole flood it would wait at least its 12 time limits (18 s). Fair, it waits
    # for the check in progress, a fresh worker and its own check (2.4 s measured on an idle
    # machine, 4.0 s at load 3.4): the bound leaves room for a loaded one.
    assert elapsed < 12 * PDF_TIMEOUT, elapsed
    statuses = sorted(answer[9:12].decode() for answer in flood)
    print("flood answers:", statuses)
    assert set(statuses) <= {"422", "503"}  # over the time limit, or no worker in time


def test_settings_of_the_limits(tmp_path: Path) -> None:
    from certissuer.config import load_settings

    profile = tmp_path / "lab.toml"
    profile.write_text(
        "[web]\nupload_concurrency = 3\nheader_timeout = 5\nbody_timeout = 30.5\n",
        encoding="utf-8",
    )
    s = load_settings(profile, env={"CERTISSUER_WEB_UPLOAD_CONCURRENCY": "4"})
    assert (s.web_upload_concurrency, s.web_header_timeout, s.web_body_timeout) == (4, 5.0, 30.5)
    d = Settings()
    assert (d.web_upload_concurrency, d.web_header_timeout, d.web_body_timeout) == (2, 10.0, 60.0)
