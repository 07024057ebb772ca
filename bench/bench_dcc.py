"""Benchmark: the extra cost per certificate of the DCC (build + validate + embed) vs issuing.

Issues the sample calibration certificate end to end (render, QR, sign, write, ledger) with the
DCC embedded and without, alternating so that drift hits both alike, and times the DCC steps on
their own: building the XML, validating it against the schema compiled once, embedding it in
the PDF. The embedded file also makes the signer parse and hash a slightly larger PDF; the
end-to-end difference includes that. Target: the extra cost under 15 % of the issue time.

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_dcc.py [--n 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "keys.example"
SAMPLE = ROOT / "samples" / "calibration.json"
TARGET = 0.15


def _sample(i: int, tag: str) -> Any:
    from certissuer.model import parse_certificate

    data = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    data["ref"] = f"bench-dcc-{tag}-{i}"
    return parse_certificate(data)


def _settings(db: Path) -> Any:
    from certissuer.config import Settings

    return Settings(
        lab_code="BENCH",
        lab_name_vi="Phòng thí nghiệm",
        lab_name_en="Laboratory",
        lab_accreditation="VILAS 000",
        # the head and signatory the samples print (his certificate must name him); the trial
        # CA's OCSP/CRL are not running while benchmarking
        signing_pkcs12=KEYS / "le-hoang-phuc.p12",
        signing_revocation_check=False,
        signing_trust_roots=(KEYS / "ca.pem",),
        token_key=KEYS / "token-key.pem",
        ledger_url=f"sqlite:///{db}",
        token_url_base="https://kiemdinh.example.vn",
    )


def _median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    from lxml import etree

    from certissuer import dcc
    from certissuer.dcc import write as dcc_write
    from certissuer.issue import Issuer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="certificates per variant")
    args = parser.parse_args()
    print(
        f"benchmark: DCC cost, {args.n} calibration certificates per variant, RSA-2048, "
        f"SQLite, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp) / "ledger.db")
        start = time.perf_counter()
        issuer = Issuer.from_settings(settings, passphrase=b"demo", out_dir=Path(tmp) / "out")
        writer = issuer.dcc
        if writer is None:
            raise SystemExit("no DCC schemas found: set CERTISSUER_DCC_SCHEMA_DIR")
        print(f"setup (keys, templates, schema compiled once): {time.perf_counter() - start:.2f} s")
        issuer.issue(_sample(-1, "warm-on"))
        issuer.dcc = None
        issuer.issue(_sample(-1, "warm-off"))

        with_dcc: list[float] = []
        without: list[float] = []
        for i in range(args.n):
            pair = ((True, with_dcc), (False, without))
            for on, bucket in pair if i % 2 else pair[::-1]:  # ABBA: order effects cancel
                issuer.dcc = writer if on else None
                cert = _sample(i, "on" if on else "off")
                t0 = time.perf_counter()
                issuer.issue(cert)
                bucket.append(time.perf_counter() - t0)
        issuer.dcc = writer

        cert = _sample(0, "parts")
        number = "HC-2026-000001"
        pdf = issuer.renderer.render_pdf(
            cert,
            number=number,
            issued=date(2026, 11, 27),
            qr_url="https://x/v/y",
            settings=settings,
        )
        xml = writer.xml(cert, number=number)
        root = dcc_write._build(cert, number, settings)
        build = _median_ms(lambda: dcc_write._build(cert, number, settings), args.n)
        serialise = _median_ms(
            lambda: etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True),
            args.n,
        )
        validate = _median_ms(lambda: writer.schema.errors(root), args.n)
        embed = _median_ms(lambda: dcc.embed(pdf, xml), args.n)

    on_ms = statistics.median(with_dcc) * 1000
    off_ms = statistics.median(without) * 1000
    extra = on_ms - off_ms
    parts = build + serialise + validate + embed
    print(f"issue, end to end, with DCC   : {on_ms:7.1f} ms per certificate (median)")
    print(f"issue, end to end, without DCC: {off_ms:7.1f} ms per certificate (median)")
    print(f"extra per certificate         : {extra:7.1f} ms = {extra / on_ms:5.1%} of issuing")
    print(f"  build XML (lxml)            : {build:7.2f} ms")
    print(f"  serialise ({len(xml)} bytes)    : {serialise:7.2f} ms")
    print(f"  validate (schema built once): {validate:7.2f} ms")
    print(f"  embed in the PDF (pyHanko)  : {embed:7.2f} ms")
    print(f"  sum of the DCC steps        : {parts:7.2f} ms = {parts / on_ms:5.1%} of issuing")
    share = max(extra, parts) / on_ms
    verdict = "within" if share < TARGET else "OVER"
    print(f"target: under {TARGET:.0%} of issuing -> {share:.1%}, {verdict} target")


if __name__ == "__main__":
    main()
