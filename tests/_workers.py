"""Code that runs in worker and victim processes of tests/test_concurrency.py."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any

from reportlab.pdfgen import canvas

from certissuer.config import Settings, load_settings
from certissuer.errors import SigningError
from certissuer.issue import Issuer, load_token_key
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Sealer

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "calibration.json"


class TinyRenderer:
    """A one-line PDF: these tests are about numbering, files and crashes, not layout."""

    def render_pdf(
        self, cert: Any, *, number: str, issued: date, qr_url: str, settings: Settings
    ) -> bytes:
        buf = io.BytesIO()
        c = canvas.Canvas(buf, initialFontName="Courier")
        c.drawString(72, 720, f"{number} {cert.ref}")
        c.save()
        return buf.getvalue()


class InjectedFailure(SigningError):
    pass


def record(ref: str) -> Any:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["ref"] = ref
    return parse_certificate(data)


def issue_worker(
    settings: Settings, passphrase: bytes, out: Path, worker: int, count: int, fail_rate: float
) -> tuple[list[str], int]:
    """Issue `count` records; the signer and the ledger fail at random, as hardware does."""
    rng = random.Random(worker)
    ledger = Ledger.open(settings.ledger_url)
    sealer = Sealer.from_pkcs12(settings.signing_pkcs12, passphrase)  # type: ignore[arg-type]
    issuer = Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=out,
        renderer=TinyRenderer(),
    )  # type: ignore[arg-type]
    real_sign, real_complete = sealer.sign, ledger.complete

    def flaky_sign(pdf: bytes, **kw: Any) -> bytes:
        if rng.random() < fail_rate:
            raise InjectedFailure("token unplugged")
        return real_sign(pdf, **kw)

    def flaky_complete(number: str, **kw: Any) -> Any:
        if rng.random() < fail_rate:
            raise InjectedFailure("connection lost before commit")
        return real_complete(number, **kw)

    sealer.sign = flaky_sign  # type: ignore[method-assign]
    ledger.complete = flaky_complete  # type: ignore[method-assign]
    numbers, failures = [], 0
    for i in range(count):
        try:
            numbers.append(issuer.issue(record(f"w{worker}-{i}")).number)
        except InjectedFailure:
            failures += 1
    return numbers, failures


def victim(profile: str, out: str, refs_json: str, point: str) -> None:
    """Issue the records, and SIGKILL this process at `point` of the third certificate."""
    settings = load_settings(Path(profile), env={})
    issuer = Issuer.from_settings(settings, passphrase=b"pw", out_dir=Path(out))
    ledger = issuer.ledger
    calls = {"n": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def third(fn: Any, *, before: bool) -> Any:
        def wrapped(*a: Any, **kw: Any) -> Any:
            calls["n"] += 1
            if before and calls["n"] == 3:
                die()
            result = fn(*a, **kw)
            if not before and calls["n"] == 3:
                die()
            return result

        return wrapped

    import certissuer.ledger.storage as issue_mod  # where the files store writes

    if point == "before_render":
        issuer.renderer.render_pdf = third(issuer.renderer.render_pdf, before=True)  # type: ignore[method-assign]
    elif point == "after_sign":
        issuer.sealer.sign = third(issuer.sealer.sign, before=False)  # type: ignore[method-assign]
    elif point == "before_commit":
        ledger.complete = third(ledger.complete, before=True)  # type: ignore[method-assign]
    elif point == "mid_write":
        real_write = issue_mod.write_atomic

        def half_write(path: Path, data: bytes) -> None:
            calls["n"] += 1
            if calls["n"] == 3:
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data[: len(data) // 2])
                die()
            real_write(path, data)

        issue_mod.write_atomic = half_write  # type: ignore[assignment]
    for ref in json.loads(refs_json):
        issuer.issue(record(ref))


if __name__ == "__main__":
    victim(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
