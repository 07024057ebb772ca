"""Every kind of page certissuer prints, rendered from fixed inputs for the visual tests.

Each document is made with a fixed number, issue date and QR address, so two renders on one
machine give the same pixels. `documents(tmp)` returns name -> PDF bytes; `python -m
tests._pages OUT` writes them (and 72 dpi PNGs of every page) under OUT, which is how the
before/after renders of a layout change are made.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ISSUED = date(2026, 11, 27)
QR_URL = "https://kiemdinh.example.vn/v/" + "eyJhbGciOiJFZERTQSJ9" * 9
LONG_MODEL = "XPR205DR-HIGHCAP/2021-EXTENDED-RANGE"
LONG_SERIAL = "B912345678-0042/SN-2021-HCM-000123"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (SAMPLES / name).read_text(encoding="utf-8"), parse_float=Decimal
    )
    return data


def lab() -> Any:
    from certissuer.config import Settings

    return Settings(
        lab_code="T01",
        lab_name_vi="Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp",
        lab_name_en="Dong Thap Technical Centre for Standards, Metrology and Quality",
        lab_address_vi="Số 12, đường 30 Tháng 4, phường Cao Lãnh, tỉnh Đồng Tháp",
        lab_address_en="No. 12, 30 Thang 4 Street, Cao Lanh Ward, Dong Thap Province",
        lab_place="Đồng Tháp",
        lab_accreditation="VILAS 000",
        token_url_base="https://verify.test.invalid",
    )


def calibration_60() -> dict[str, Any]:
    """The calibration sample with 60 result rows and a long model and serial."""
    data = _load("calibration.json")
    base = data["results"][0]
    data["results"] = [
        {**base, "nominal": str(i), "measured": f"{i}.00347", "uncertainty": "0.0123"}
        for i in range(10, 70)
    ]
    data["item"] = {**data["item"], "model": LONG_MODEL, "serial": LONG_SERIAL}
    return data


def verification_long() -> dict[str, Any]:
    """The verification sample with 30 checks."""
    data = _load("verification.json")
    checks = data["checks"]
    data["checks"] = [copy.deepcopy(checks[i % len(checks)]) for i in range(30)]
    return data


def amended() -> dict[str, Any]:
    data = _load("calibration.json")
    data["replaces"] = {"number": "HC-2026-000007", "reason": "sai số hiệu / wrong serial number"}
    return data


def failed() -> dict[str, Any]:
    data = _load("verification.json")
    data["checks"][0] = {**data["checks"][0], "error": "0.5"}
    return data


def scan_png(path: Path, pages: int = 1) -> Any:
    from certissuer.model import ScanRef

    image = Image.new("RGB", (595, 842), "white")
    image.paste((40, 40, 40), (60, 60, 535, 120))
    image.paste((120, 120, 120), (60, 160, 535, 700))
    image.save(path, dpi=(72, 72))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ScanRef(file_name=path.name, path=str(path), sha256=sha, pages=pages)


def paper_copy(tmp: Path) -> Any:
    from certissuer.model import PaperCopy

    return PaperCopy(
        ref="paper:G-2019-00123",
        paper_number="G-2019-00123",
        paper_kind="verification",
        lab="Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp",
        instrument="Cân bàn / Platform scale",
        serial="P-1",
        owner="Chợ Cao Lãnh",
        paper_issue_date=date(2019, 5, 1),
        valid_until=date(2020, 5, 1),
        scans=[scan_png(tmp / "scan-1.png"), scan_png(tmp / "scan-2.png")],
    )


def recall() -> Any:
    from certissuer.registry.recall import Recall, RecallGroup, RecallItem

    items = [
        RecallItem(
            owner_code="O1",
            owner_name="Công ty TNHH Xăng dầu Sa Đéc",
            owner_address="Số 5, đường Nguyễn Sinh Sắc, phường Sa Đéc, tỉnh Đồng Tháp",
            type_code="cot-do-xang-dau",
            type_name="Cột đo xăng dầu / Fuel dispenser",
            name=f"Vòi {n}",
            model="Tatsuno SUNNY",
            serial=f"TS-2019-8823{n}",
            place_of_use="Cửa hàng xăng dầu số 3, quốc lộ 80",
            last_certificate=f"KĐ-2026-0000{40 + n}",
            valid_until=date(2026, 12, 20 + n),
            overdue=False,
        )
        for n in range(1, 7)
    ]
    return Recall(
        today=ISSUED,
        until=date(2027, 1, 31),
        groups=[RecallGroup("O1", items[0].owner_name, items[0].owner_address, items)],
        standards=[],
    )


def annual(types: bool = True) -> Any:
    from certissuer.report.annual import (
        AnnualReport,
        Digitisation,
        EventCounts,
        LabFigures,
        QuantityCount,
        TypeResult,
    )
    from certissuer.report.queries import ReportCheckpoint

    months = tuple(range(1, 12))
    return AnnualReport(
        year=2026,
        start=date(2026, 1, 1),
        until=date(2026, 11, 20),
        checkpoint=ReportCheckpoint(
            "T01", 1234, "ab" * 32, datetime(2026, 11, 21, 3, 0, tzinfo=UTC), "kid-1", 1234, 56
        ),
        months=months,
        issued={
            "verification": (40, 52, 61, 48, 70, 66, 58, 73, 80, 77, 65),
            "calibration": (12, 15, 9, 20, 18, 22, 17, 25, 19, 21, 16),
        },
        verification_results=(
            TypeResult("cot-do-xang-dau", "Cột đo xăng dầu / Fuel dispenser", 420, 12),
            TypeResult("can-ban", "Cân bàn / Platform scale", 150, 6),
            TypeResult("(khác / other)", "(khác / other)", 20, 1),
        ),
        calibration_quantities=(
            QuantityCount("Khối lượng / Mass", 90),
            QuantityCount("Áp suất / Pressure", 60),
            QuantityCount("Nhiệt độ / Temperature", 30),
            QuantityCount("Điện / Electrical quantities", 14),
        ),
        events=(EventCounts("verification", (0,) * 10 + (2,), (0,) * 9 + (1, 0)),),
        overdue=(),
        instruments_registered=0,
        standards_due=(),
        standards_window_days=90,
        digitisation=Digitisation(
            electronic=tuple(500 + 60 * i for i in range(11)),
            digitised=tuple(10 + 8 * i for i in range(11)),
            paper_total=20000,
        ),
        digitised_in_period=80,
        labs=(LabFigures("T01", "Trung tâm Đồng Tháp", 690, 194, 19, 2, 1, 80),),
    )


def _cert(renderer: Any, cert: Any, number: str) -> bytes:
    pdf: bytes = renderer.render_pdf(
        cert, number=number, issued=ISSUED, qr_url=QR_URL, settings=lab()
    )
    return pdf


def documents(tmp: Path) -> dict[str, Callable[[], bytes]]:
    """Name -> a function rendering that document as PDF bytes (scans written under `tmp`)."""
    from certissuer.digitise import append_scans
    from certissuer.issue import FailureNotice
    from certissuer.model import parse_certificate
    from certissuer.registry.recall import recall_pdf
    from certissuer.render import Renderer
    from certissuer.report import render_annual_pdf

    r = Renderer()

    def copy_pdf() -> bytes:
        paper = paper_copy(tmp)
        first = _cert(r, paper, "BS-2026-000001")
        pdf: bytes = append_scans(first, paper, number="BS-2026-000001")
        return pdf

    def cert(make: Callable[[], Any], number: str) -> Callable[[], bytes]:
        return lambda: _cert(r, make(), number)

    def annual_pdf() -> bytes:
        pdf: bytes = render_annual_pdf(
            annual(), settings=lab(), signer_name="Nguyễn Văn A", issued_on=date(2026, 12, 3)
        )
        return pdf

    return {
        "verification": cert(
            lambda: parse_certificate(_load("verification.json")), "KĐ-2026-000049"
        ),
        "calibration": cert(lambda: parse_certificate(_load("calibration.json")), "HC-2026-000012"),
        "calibration-60": cert(lambda: parse_certificate(calibration_60()), "HC-2026-000060"),
        "verification-long": cert(lambda: parse_certificate(verification_long()), "KĐ-2026-000050"),
        "amended": cert(lambda: parse_certificate(amended()), "HC-2026-000013"),
        "failure": cert(
            lambda: FailureNotice(parse_certificate(failed()), "KĐ-2025-000777"), "TB-2026-000003"
        ),
        "copy": copy_pdf,
        "recall": lambda: recall_pdf(recall(), lab()),
        "annual": annual_pdf,
    }


def rasterise(pdf: Path, out_prefix: Path, dpi: int = 72) -> list[Path]:
    """Render every page of `pdf` as a greyscale PNG at `dpi`; the paths, in page order."""
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-gray", "-png", str(pdf), str(out_prefix)], check=True
    )
    found = list(out_prefix.parent.glob(out_prefix.name + "-*.png"))
    pages = [p for p in found if p.stem[len(out_prefix.name) + 1 :].isdigit()]
    return sorted(pages, key=lambda p: int(p.stem[len(out_prefix.name) + 1 :]))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, make in documents(out).items():
        path = out / f"{name}.pdf"
        path.write_bytes(make())
        pages = rasterise(path, out / name)
        print(f"{name}: {len(pages)} page(s)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
