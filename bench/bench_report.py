"""Benchmark of the reports (issue 10): the annual report on 100,000 certificates and 100,000
instruments, on SQLite and (when the variable is set) PostgreSQL.

    CERTISSUER_P12_PASSPHRASE=demo \\
    CERTISSUER_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/bench_report.py [--certificates 100000] [--instruments 100000]

The ledger is filled with SQL (rows with correct Merkle leaves, no PDFs); then a fresh process
computes the report (aggregate queries), renders the PDF with its charts, signs it with the
demo key and writes the XLSX, and prints the time of each step and its peak memory
(VmHWM, else ru_maxrss). PostgreSQL gets a fresh schema, dropped afterwards. Targets: under 10 s and
under 300 MB on each back end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from certissuer import merkle  # noqa: E402
from certissuer.ledger import (  # noqa: E402
    CertificateEntry,
    FailedVerification,
    Ledger,
    LedgerEvent,
    LogHead,
    LogLeaf,
    leaf_data,
)
from certissuer.registry import Instrument, Owner, Register  # noqa: E402

YEAR = 2026
NAMES = [
    "Cân bàn / Platform scale",
    "Cột đo xăng dầu / Fuel dispenser",
    "Công tơ điện xoay chiều 1 pha kiểu điện tử / Electricity meter",
    "Taximet / Taximeter",
    "Đồng hồ nước lạnh cơ khí / Water meter",
]
QUANTITIES = ["Khối lượng / Mass", "Áp suất / Pressure", "Nhiệt độ / Temperature"]
PLACES = [f"Xã {i}, tỉnh Đồng Tháp" for i in range(60)]
OWNER_KINDS = ["doanh nghiệp", "chợ", "hộ kinh doanh", "cơ quan nhà nước", ""]


def fill(url: str, certificates: int, instruments: int) -> None:
    """Write `certificates` issued entries (events, leaves) and `instruments` with SQL."""
    from sqlalchemy import insert, update

    ledger = Ledger.open(url)
    Register(ledger.engine, lab_code="B01").seed_types()
    at = datetime(YEAR, 1, 1, 3, tzinfo=UTC)
    entries, events, leaves = [], [], []
    for n in range(1, certificates + 1):
        kind = ("verification", "calibration", "verification", "copy")[n % 4]
        lab = ("B01", "B02", "B03")[n % 3]
        day = date(YEAR - (n % 5 == 0), 1 + n % 12, 1 + n % 28)
        series = {"verification": "KĐ", "calibration": "HC", "copy": "BS"}[kind] + lab
        data = {"results": [{"quantity": QUANTITIES[n % 3]}]} if kind == "calibration" else {}
        entry = CertificateEntry(
            number=f"{series}-{day.year}-{n:07d}", lab_code=lab, series=series, year=day.year,
            seq=n, kind=kind, ref=f"b{n}", instrument_name=NAMES[n % len(NAMES)],
            instrument_model="M", instrument_serial=f"S{n}", customer_name="Khách hàng",
            work_date=day, issue_date=day, valid_until=day + timedelta(days=365),
            issued_at=at, data_digest="0" * 64, data_json=json.dumps(data, ensure_ascii=False),
            token="t", pdf_sha256=hashlib.sha256(b"%d" % n).hexdigest(),
            paper_number=f"G-{n}" if kind == "copy" else None,
        )  # fmt: skip
        event = LedgerEvent(id=n, number=entry.number, kind="issued", at=at,
                            pdf_sha256=entry.pdf_sha256)  # fmt: skip
        entries.append(entry.model_dump())
        events.append(event.model_dump())
        leaves.append({"idx": n - 1, "event_id": n,
                       "leaf_hash": merkle.leaf_hash(leaf_data(event, entry)).hex()})  # fmt: skip
    with ledger.engine.begin() as conn:
        for table, rows in ((CertificateEntry, entries), (LedgerEvent, events), (LogLeaf, leaves)):
            for i in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[i : i + 5000])
        conn.execute(update(LogHead).where(LogHead.id == 1).values(size=certificates))
        conn.execute(
            insert(FailedVerification),
            [
                {"lab_code": "B01", "ref": f"f{i}", "recorded_at": at + timedelta(days=i % 300),
                 "instrument_serial": f"F{i}", "data_digest": "0" * 64,
                 "data_json": json.dumps({"instrument": {"name": NAMES[i % len(NAMES)]}})}
                for i in range(certificates // 50)
            ],
        )  # fmt: skip
        conn.execute(
            insert(Owner),
            [{"code": f"O{i}", "name": f"Chủ {i}", "address": "", "kind": OWNER_KINDS[i % 5],
              "email": ""} for i in range(1000)],
        )  # fmt: skip
        owner_ids = [row[0] for row in conn.execute(Owner.__table__.select().with_only_columns(
            Owner.__table__.c.id))]  # fmt: skip
        rows = [
            {"owner_id": owner_ids[i % len(owner_ids)], "type_code": "can-ban", "name": "",
             "model": "", "serial": f"I{i}", "manufacturer": "", "year": None, "ranges": "",
             "accuracy_class": "", "place_of_use": PLACES[i % len(PLACES)],
             "last_certificate": None, "verified_on": None,
             "valid_until": date(YEAR - 1, 1, 1) + timedelta(days=i % 900)}
            for i in range(instruments)
        ]  # fmt: skip
        for i in range(0, len(rows), 5000):
            conn.execute(insert(Instrument), rows[i : i + 5000])
    key_path = ROOT / "keys.example" / "token-key.pem"
    from certissuer.token import TokenKey

    ledger.checkpoint(TokenKey.load(key_path), lab_code="B01", at=datetime.now(UTC))
    ledger.engine.dispose()


def _peak_mb() -> float:
    """This process's peak resident memory in MB.

    Linux carries the parent's high-water mark into ``ru_maxrss`` across fork and exec (the
    filling parent peaks far above the report), so read the process's own ``VmHWM`` first.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(url: str, out: Path) -> None:
    """Compute, render, sign and write the report; print timings and peak memory as JSON."""
    from certissuer.config import Settings
    from certissuer.report import annual_report, render_annual_pdf, sign_report, write_annual_xlsx
    from certissuer.sign import Sealer

    ledger = Ledger.open(url, create=False)
    settings = Settings(lab_code="B01", lab_name_vi="Trung tâm đo lường", lab_name_en="Centre")
    passphrase = os.environ.get("CERTISSUER_P12_PASSPHRASE", "demo").encode()
    sealer = Sealer.from_pkcs12(ROOT / "keys.example" / "le-hoang-phuc.p12", passphrase)
    steps: dict[str, float] = {}
    start = time.perf_counter()
    data = annual_report(ledger.engine, year=YEAR, until=date(YEAR, 11, 20), paper_total=200000)
    steps["queries"] = time.perf_counter() - start
    t = time.perf_counter()
    pdf = render_annual_pdf(data, settings=settings, signer_name=sealer.signer_name)
    steps["pdf"] = time.perf_counter() - t
    t = time.perf_counter()
    signed = sign_report(pdf, sealer, data.checkpoint, title="Báo cáo", location="Đồng Tháp",
                         name_on_page=sealer.signer_name)  # fmt: skip
    (out / "report.pdf").write_bytes(signed)
    steps["sign"] = time.perf_counter() - t
    t = time.perf_counter()
    write_annual_xlsx(data, out / "report.xlsx")
    steps["xlsx"] = time.perf_counter() - t
    steps["total"] = time.perf_counter() - start
    rss_mb = _peak_mb()
    print(json.dumps({"steps": steps, "peak_mb": rss_mb, "issued": data.issued_total,
                      "failed": data.failed_total, "overdue": data.overdue_total}))  # fmt: skip


def run(name: str, url: str, certificates: int, instruments: int) -> None:
    t = time.perf_counter()
    fill(url, certificates, instruments)
    setup = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, __file__, "--measure", url, "--out", tmp],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    steps = ", ".join(f"{k} {v:.2f} s" for k, v in figures["steps"].items())
    print(f"{name}: {certificates:,} certificates + {instruments:,} instruments "
          f"(filled in {setup:.0f} s): {steps}; peak {figures['peak_mb']:.0f} MB; "
          f"{figures['issued']:,} issued, {figures['failed']:,} failed, "
          f"{figures['overdue']:,} overdue in the report")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=100_000)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'ledger.db'}", args.certificates, args.instruments)
    base = os.environ.get("CERTISSUER_TEST_PG_URL")
    if not base:
        print("PostgreSQL: skipped (set CERTISSUER_TEST_PG_URL)")
        return
    import sqlalchemy

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}options=-csearch_path%3D{schema}"
        run("PostgreSQL", url, args.certificates, args.instruments)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


if __name__ == "__main__":
    main()
