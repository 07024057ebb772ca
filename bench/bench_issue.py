"""Benchmark: certificates per second for issuing the sample calibration certificate.

Measures certissuer's whole pipeline (render + QR + sign + ledger + atomic write) in one process
and in two processes sharing one SQLite ledger, and the naive loop a lab's script would write
with the same libraries at their defaults (qrcode with automatic mask, a platypus render,
SimpleSigner.load_pkcs12 + PdfSigner.sign_pdf with RSA-2048, one SQLModel insert per
certificate). Prints certificates/second, the ratio, and peak memory (max RSS).

    CERTISSUER_P12_PASSPHRASE=demo python bench/bench_issue.py [--n 60]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import resource
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "keys.example"
SAMPLE = ROOT / "samples" / "calibration.json"


def _sample(i: int, tag: str) -> Any:
    from certissuer.model import parse_certificate

    data = json.loads(SAMPLE.read_text(encoding="utf-8"), parse_float=Decimal)
    data["ref"] = f"bench-{tag}-{i}"
    return parse_certificate(data)


def _settings(url: str, appearance: str = "invisible") -> Any:
    from certissuer.config import Settings

    return Settings(
        signing_appearance=appearance,
        lab_code="BENCH",
        # the head and signatory the samples print (his certificate must name him); the trial
        # CA's OCSP/CRL are not running while benchmarking
        signing_pkcs12=KEYS / "le-hoang-phuc.p12",
        signing_revocation_check=False,
        signing_trust_roots=(KEYS / "ca.pem",),
        token_key=KEYS / "token-key.pem",
        ledger_url=url,
        token_url_base="https://kiemdinh.example.vn",
    )


def _certissuer_worker(
    url: str, out: Path, n: int, tag: str, barrier: Any, results: Any, appearance: str
) -> None:
    from certissuer.issue import Issuer

    issuer = Issuer.from_settings(_settings(url, appearance), passphrase=b"demo", out_dir=out)
    certs = [_sample(i, tag) for i in range(n)]
    issuer.issue(_sample(-1, tag))  # warm up: fonts, templates, connections
    barrier.wait()  # every worker is ready: the clock starts now
    start = time.monotonic()
    for cert in certs:
        issuer.issue(cert)
    results.put((n, start, time.monotonic()))


def bench_certissuer(
    n: int, procs: int, url: str | None = None, appearance: str = "invisible"
) -> float:
    """Certificates per second over `procs` processes sharing one ledger: a new SQLite file,
    or `url` (for example an empty PostgreSQL schema)."""
    from certissuer.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        url = url or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        Ledger.open(url).engine.dispose()
        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(procs), ctx.Queue()
        workers = [
            ctx.Process(
                target=_certissuer_worker,
                args=(url, out, n // procs, f"p{k}", barrier, results, appearance),
            )
            for k in range(procs)
        ]
        for w in workers:
            w.start()
        runs = [results.get() for _ in workers]
        for w in workers:
            w.join()
        total = sum(r[0] for r in runs)
        elapsed = max(r[2] for r in runs) - min(r[1] for r in runs)
        ledger = Ledger.open(url)
        count = ledger.count()
        assert count == total + procs, f"ledger holds {count}, expected {total + procs}"
        numbers = sorted(e.seq for e in ledger.entries(limit=10**6))
        assert numbers == list(range(1, count + 1)), "numbers are not gapless"
        ledger.engine.dispose()
        return total / elapsed


def naive_loop(n: int) -> float:
    """The script a lab would write: stock defaults, nothing kept between documents."""
    import fontpkg
    import qrcode
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Table
    from sqlmodel import Field, Session, SQLModel, create_engine

    class NaiveRow(SQLModel, table=True):
        number: str = Field(primary_key=True)
        sha256: str

    pdfmetrics.registerFont(TTFont("BVP", str(fontpkg.path("Be Vietnam Pro", 400))))
    styles = getSampleStyleSheet()
    for style in styles.byName.values():
        if hasattr(style, "fontName"):
            style.fontName = "BVP"
    cert = _sample(0, "naive")
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/naive.db")
        SQLModel.metadata.create_all(engine)
        signer = signers.SimpleSigner.load_pkcs12(str(KEYS / "signer.p12"), passphrase=b"demo")
        start = time.perf_counter()
        for i in range(n):
            number = f"HC-2026-{i + 1:06d}"
            qr = qrcode.make(f"https://kiemdinh.example.vn/v/{'A' * 136}")
            png = io.BytesIO()
            qr.save(png)
            png.seek(0)
            buf = io.BytesIO()
            doc = SimpleDocTemplate(buf, pagesize=A4)
            rows = [["Nominal", "Indicated", "U", "k", "Unit"]] + [
                [str(m.nominal), str(m.measured), str(m.uncertainty), "2", m.unit]
                for m in cert.results
            ] * 8
            table = Table(rows, repeatRows=1)
            table.setStyle(
                [("FONT", (0, 0), (-1, -1), "BVP"), ("GRID", (0, 0), (-1, -1), 0.25, colors.grey)]
            )
            story = [
                Paragraph(f"GIẤY CHỨNG NHẬN HIỆU CHUẨN {number}", styles["Title"]),
                Paragraph(cert.customer.name, styles["Normal"]),
                table,
                PageBreak(),
                Paragraph(cert.method, styles["Normal"]),
                Image(png, 100, 100),
            ]
            doc.build(story)
            w = IncrementalPdfFileWriter(io.BytesIO(buf.getvalue()))
            out = signers.sign_pdf(
                w, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer
            )
            import hashlib

            sha = hashlib.sha256(out.getvalue()).hexdigest()
            (Path(tmp) / f"{number}.pdf").write_bytes(out.getvalue())
            with Session(engine) as s:
                s.add(NaiveRow(number=number, sha256=sha))
                s.commit()
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="certificates per measurement")
    args = parser.parse_args()
    print(
        f"benchmark: {args.n} calibration certificates per run, RSA-2048, SQLite, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    one = bench_certissuer(args.n, 1)
    print(f"certissuer, 1 process : {one:6.1f} certificates/s (invisible signature)")
    visible = bench_certissuer(args.n, 1, appearance="visible")
    print(f"certissuer, 1 process : {visible:6.1f} certificates/s (visible signature box)")
    two = bench_certissuer(args.n, 2)
    print(f"certissuer, 2 processes: {two:6.1f} certificates/s")
    naive = naive_loop(max(10, args.n // 3))
    print(f"naive loop, 1 process : {naive:6.1f} certificates/s")
    print(f"ratio certissuer/naive (1 process): {one / naive:4.1f}x")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory: {own:.0f} MiB (this process, naive loop), {kids:.0f} MiB (largest worker)")


if __name__ == "__main__":
    main()
