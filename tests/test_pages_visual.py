"""Pages a lab would hang on the wall (issue 19): every template rendered and looked at.

Every document of `tests._pages` (the samples, a 60-row calibration, a 30-check
verification, an amended certificate, a notice of failure, an electronic copy with its scans,
a recall letter and the annual report) is rendered with a fixed number, date and QR address,
so that renders on one machine are identical, and then:

* compared page by page, at 72 dpi in greyscale, with the reference images in
  ``tests/visual/`` (same page count, mean absolute difference per page under
  `MAX_MEAN_DIFF` grey levels). After an intended layout change, refresh the references with
  ``CERTISSUER_UPDATE_VISUAL=1 pytest tests/test_pages_visual.py`` and look at every image
  that changed before committing it;
* measured from the PDF's own text positions (``pdftotext -bbox-layout``): no text outside
  the margins, no two text lines overlapping, the pages each document is expected to take,
  and each fault the issue lists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from . import _pages

VISUAL = Path(__file__).resolve().parent / "visual"
UPDATE = os.environ.get("CERTISSUER_UPDATE_VISUAL") == "1"
MAX_MEAN_DIFF = 1.5
"""Mean absolute difference, in grey levels (0-255), a page may differ from its reference:
anti-aliasing noise stays far below it, a moved line of text or a table row far above."""
MM = 72 / 25.4
PAGE_W, PAGE_H = 210 * MM, 297 * MM

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("pdftoppm", "pdftotext")),
    reason="needs poppler-utils (.ci/run installs it)",
)


@dataclass(frozen=True)
class Line:
    """One line of text as pdftotext reads it: its box in points from the top left, its words."""

    x0: float
    y0: float
    x1: float
    y1: float
    words: tuple[tuple[str, float, float, float, float], ...]

    @property
    def text(self) -> str:
        return " ".join(w[0] for w in self.words)


@dataclass(frozen=True)
class Doc:
    name: str
    pdf: Path
    images: list[Path]
    pages: list[list[Line]]

    def text(self, page: int) -> str:
        return "\n".join(line.text for line in self.pages[page])

    def find(self, words: str) -> list[tuple[int, Line]]:
        """Every (page index, line) whose text contains `words`."""
        return [(n, ln) for n, page in enumerate(self.pages) for ln in page if words in ln.text]


def _lines(pdf: Path) -> list[list[Line]]:
    xml = subprocess.run(
        ["pdftotext", "-bbox-layout", str(pdf), "-"], check=True, capture_output=True
    ).stdout
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    root = ET.fromstring(xml)
    pages = []
    for page in root.iterfind(".//h:page", ns):
        lines = []
        for line in page.iterfind(".//h:line", ns):
            words = tuple(
                (w.text or "", *(float(w.get(k, 0)) for k in ("xMin", "yMin", "xMax", "yMax")))
                for w in line.iterfind("h:word", ns)
            )
            box = (float(line.get(k, 0)) for k in ("xMin", "yMin", "xMax", "yMax"))
            lines.append(Line(*box, words=words))
        pages.append(lines)
    return pages


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Doc]:
    out = tmp_path_factory.mktemp("pages")
    made = {}
    for name, make in _pages.documents(out).items():
        pdf = out / f"{name}.pdf"
        pdf.write_bytes(make())
        made[name] = Doc(name, pdf, _pages.rasterise(pdf, out / name), _lines(pdf))
    return made


NAMES = [
    "verification",
    "calibration",
    "calibration-60",
    "verification-long",
    "amended",
    "failure",
    "copy",
    "recall",
    "annual",
]
CERTIFICATES = ["verification", "calibration", "calibration-60", "verification-long",
                "amended", "failure", "copy"]  # fmt: skip


# -- the references -------------------------------------------------------------------------


def _diff(image: Path, reference: Path) -> float:
    with Image.open(image) as a, Image.open(reference) as b:
        a, b = a.convert("L"), b.convert("L")
        if a.size != b.size:
            return 255.0
        return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


@pytest.mark.parametrize("name", NAMES)
def test_pages_match_the_reference_images(docs: dict[str, Doc], name: str) -> None:
    doc = docs[name]
    refs = sorted(VISUAL.glob(f"{name}-[0-9]*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    refs = [p for p in refs if p.stem[len(name) + 1 :].isdigit()]
    if UPDATE:
        VISUAL.mkdir(exist_ok=True)
        for old in refs:
            old.unlink()
        for n, image in enumerate(doc.images, 1):
            with Image.open(image) as page:  # 8-bit grey keeps the references small
                page.convert("L").save(VISUAL / f"{name}-{n}.png", optimize=True)
        pytest.skip(f"references of {name} written to {VISUAL}")
    assert refs, f"no reference image for {name}: run with CERTISSUER_UPDATE_VISUAL=1"
    assert len(doc.images) == len(refs), f"{name}: {len(doc.images)} pages, reference {len(refs)}"
    for n, (image, ref) in enumerate(zip(doc.images, refs, strict=True), 1):
        diff = _diff(image, ref)
        assert diff < MAX_MEAN_DIFF, f"{name} page {n} differs from {ref.name} by {diff:.2f}"


def test_a_changed_page_fails_the_comparison(docs: dict[str, Doc], tmp_path: Path) -> None:
    """The tolerance catches a line of text moved by a few points."""
    image = docs["verification"].images[0]
    with Image.open(image) as page:
        moved = Image.new("L", page.size, 255)
        moved.paste(page.convert("L").crop((0, 200, page.width, page.height)), (0, 206))
        moved.paste(page.convert("L").crop((0, 0, page.width, 200)), (0, 0))
        moved.save(tmp_path / "moved.png")
    assert _diff(image, image) == 0
    assert _diff(tmp_path / "moved.png", image) > MAX_MEAN_DIFF


# -- geometry from the text positions -------------------------------------------------------


def _scan_page(name: str, n: int) -> bool:
    return name == "copy" and n > 0


@pytest.mark.parametrize("name", NAMES)
def test_no_text_outside_the_margins(docs: dict[str, Doc], name: str) -> None:
    doc = docs[name]
    for n, page in enumerate(doc.pages):
        if _scan_page(name, n):  # the stamp sits in the bands added above and below the scan
            for line in page:
                assert line.y1 < 16 or line.y0 > PAGE_H + 16, f"page {n + 1}: {line.text!r}"
            continue
        left, right = 18 * MM - 0.5, 192 * MM + 0.5
        top, bottom = 8 * MM, PAGE_H - 8 * MM
        for line in page:
            where = f"{name} page {n + 1}: {line.text!r} at {line.x0:.1f},{line.y0:.1f}"
            assert left <= line.x0 and line.x1 <= right, f"{where} crosses a side margin"
            assert top <= line.y0 and line.y1 <= bottom, f"{where} is in the top/bottom margin"


def _overlaps(page: list[Line], slack: float = 1.0) -> Iterator[tuple[Line, Line]]:
    """Pairs of lines whose boxes intersect by more than `slack` points both ways (font
    boxes include the room for marks; touching is not overlapping)."""
    for i, a in enumerate(page):
        for b in page[i + 1 :]:
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > slack and h > slack:
                yield a, b


@pytest.mark.parametrize("name", NAMES)
def test_no_two_lines_of_text_overlap(docs: dict[str, Doc], name: str) -> None:
    for n, page in enumerate(docs[name].pages):
        clashes = [f"{a.text!r} / {b.text!r}" for a, b in _overlaps(page)]
        assert not clashes, f"{name} page {n + 1}: " + "; ".join(clashes)


def test_overlap_check_finds_overlapping_lines() -> None:
    a = Line(10, 10, 100, 20, (("a", 10, 10, 100, 20),))
    b = Line(50, 15, 150, 25, (("b", 50, 15, 150, 25),))
    c = Line(10, 20, 100, 30, (("c", 10, 20, 100, 30),))
    assert list(_overlaps([a, b])) == [(a, b)]
    assert list(_overlaps([a, c])) == []


# -- the faults of the issue, one by one -----------------------------------------------------


def _page_of(doc: Doc, words: str) -> int:
    found = doc.find(words)
    assert found, f"{doc.name}: no line with {words!r}"
    return found[0][0]


def test_long_verification_keeps_conclusion_validity_signatures_and_qr_together(
    docs: dict[str, Doc],
) -> None:
    doc = docs["verification-long"]
    assert len(doc.pages) == 2
    last = len(doc.pages) - 1
    for words in ("Đạt yêu cầu kỹ thuật đo lường", "Có giá trị đến", "Quét mã để kiểm tra",
                  "Kiểm định viên", "Hết"):  # fmt: skip
        assert _page_of(doc, words) == last, words
    assert _page_of(doc, "Kết quả kiểm tra đo lường") == 0, "the results start on page 1"
    with Image.open(doc.images[last]) as image:  # the QR code is drawn on that page too
        assert image.convert("L").crop((40, 200, 200, 400)).getextrema()[0] < 50


def test_60_row_calibration_takes_three_pages_and_starts_its_results_on_page_1(
    docs: dict[str, Doc],
) -> None:
    doc = docs["calibration-60"]
    assert len(doc.pages) <= 3
    assert _page_of(doc, "Kết quả hiệu chuẩn") == 0
    assert "See results on page 1" in doc.text(0)
    last = len(doc.pages) - 1
    for words in ("Độ không đảm bảo đo mở rộng được công bố", "Người thực hiện", "Hết"):
        assert _page_of(doc, words) == last, words


@pytest.mark.parametrize("name", CERTIFICATES)
def test_no_page_holds_only_the_signatures_or_ends_on_a_heading(
    docs: dict[str, Doc], name: str
) -> None:
    doc = docs[name]
    body_top = 34 * MM
    for n, page in enumerate(doc.pages):
        if _scan_page(name, n):
            continue
        body = sorted(
            (ln for ln in page if body_top < ln.y0 < PAGE_H - 20 * MM), key=lambda ln: ln.y0
        )
        assert body, f"{name} page {n + 1} is empty"
        # the signature block opens with the place-and-date line; text must stand above it
        opening = [ln for ln in body if "Đồng Tháp, ngày" in ln.text]
        if opening:
            above = [ln for ln in body if ln.y1 <= opening[0].y0]
            assert above, f"{name} page {n + 1} holds only the signatures"
        last = body[-1].text
        for heading in (
            "Kết quả hiệu chuẩn",
            "Kết quả kiểm tra đo lường",
            "Chuẩn đo lường sử dụng",
        ):
            assert heading not in last, f"{name} page {n + 1} ends on its heading"


def _ink_gap(doc: Doc, upper: str, lower: str, page: int = 0) -> int:
    """White pixel rows between the ink of the line `upper` (marks under its letters
    included) and the ink of the line `lower` beneath it, on a 150 dpi render."""
    a = next(ln for n, ln in doc.find(upper) if n == page)
    b = next(ln for n, ln in doc.find(lower) if n == page)
    scale = 150 / 72
    out = doc.pdf.with_name(doc.pdf.stem + "-gap")
    subprocess.run(
        ["pdftoppm", "-r", "150", "-gray", "-png", "-singlefile", "-f", str(page + 1),
         "-l", str(page + 1), str(doc.pdf), str(out)], check=True,
    )  # fmt: skip
    with Image.open(out.with_suffix(".png")) as image:
        x0, x1 = int(min(a.x0, b.x0) * scale), int(max(a.x1, b.x1) * scale)
        top, bottom = int(a.y0 * scale), int(b.y1 * scale)
        band = image.convert("L").crop((x0, top, x1, bottom))
    ink = [band.crop((0, y, band.width, y + 1)).getextrema()[0] < 160 for y in range(band.height)]
    # the white run nearest the boundary of the two lines' boxes
    middle = int((a.y1 + b.y0) / 2 * scale) - top
    runs, start = [], None
    for y, dark in enumerate([*ink, True]):
        if not dark and start is None:
            start = y
        elif dark and start is not None:
            runs.append((start, y))
            start = None
    inner = [(s, e) for s, e in runs if s > 0 and e < len(ink)]
    near = [(s, e) for s, e in inner if s - 3 <= middle <= e + 3]
    return max((e - s for s, e in near), default=0)


def test_title_marks_do_not_touch_the_english_subtitle(docs: dict[str, Doc]) -> None:
    for name, title, subtitle in (
        ("verification", "KIỂM ĐỊNH", "CERTIFICATE OF VERIFICATION"),
        ("calibration", "HIỆU CHUẨN", "CALIBRATION CERTIFICATE"),
        ("copy", "BẢN SAO ĐIỆN TỬ", "ELECTRONIC COPY"),
    ):
        gap = _ink_gap(docs[name], title, subtitle)
        assert gap >= 8, f"{name}: {gap} px at 150 dpi between the title's marks and the subtitle"


def test_column_headings_and_long_numbers_break_only_between_words(docs: dict[str, Doc]) -> None:
    words = {
        w[0]
        for name in ("calibration-60", "copy", "verification-long")
        for page in docs[name].pages
        for line in page
        for w in line.words
    }
    for whole in ("Coverage", "Trang", "uncertainty", "Expanded", "factor", "Maximum"):
        assert whole in words, f"the heading word {whole!r} was broken"
    for name in ("calibration-60",):
        lines = [ln.text for page in docs[name].pages for ln in page]
        assert any(t.endswith("uncertainty U") for t in lines), "'U' alone on a line"
        assert any(t.endswith("factor k") for t in lines), "'k' alone on a line"
        assert any(_pages.LONG_MODEL in t for t in lines), "the model number wrapped"
        assert any(_pages.LONG_SERIAL in t for t in lines), "the serial number wrapped"


def test_replaces_line_stands_clear_of_the_table(docs: dict[str, Doc]) -> None:
    doc = docs["amended"]
    (_, replaces), *_ = doc.find("This certificate replaces certificate No. HC-2026-000007")
    (_, table), *_ = doc.find("Đối tượng hiệu chuẩn")
    assert table.y0 - replaces.y1 >= 6, f"{table.y0 - replaces.y1:.1f} pt under the line"


def test_copy_subtitle_is_centred_and_scans_carry_number_and_page_x_of_y(
    docs: dict[str, Doc],
) -> None:
    doc = docs["copy"]
    (_, vi), *_ = doc.find("của giấy chứng nhận bản giấy số G-2019-00123")
    (_, en), *_ = doc.find("of paper certificate No. G-2019-00123")
    for line in (vi, en):
        assert abs((line.x0 + line.x1) / 2 - PAGE_W / 2) < 2, f"{line.text!r} is not centred"
    total = len(doc.pages)
    assert total == 3
    for n in range(1, total):
        text = doc.text(n)
        assert "BS-2026-000001" in text
        assert f"Trang {n + 1}/{total} (Page {n + 1} of {total})" in text
    with Image.open(doc.images[1]) as scan:  # the scan is whole: its dark band is untouched
        assert scan.convert("L").getpixel((300, 16 + 90 * 72 // 72)) < 60


def test_recall_letter_keeps_each_certificate_number_whole(docs: dict[str, Doc]) -> None:
    doc = docs["recall"]
    words = [w[0] for page in doc.pages for line in page for w in line.words]
    for n in range(41, 47):
        assert f"KĐ-2026-0000{n}" in words, f"KĐ-2026-0000{n} is split or missing"
    plain = subprocess.run(
        ["pdftotext", str(doc.pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "KĐ-2026-000041" in plain  # copied from the PDF, it is the real number


def test_annual_report_pages(docs: dict[str, Doc]) -> None:
    doc = docs["annual"]
    text = "\n".join(doc.text(n) for n in range(len(doc.pages)))
    assert "Đồng Tháp, ngày 03 tháng 12 năm 2026" in text  # the signing day, not the period end
    numbers = [
        int(ln.text.split(".")[0])
        for page in doc.pages
        for ln in page
        if ln.text[:2].rstrip(".").isdigit() and ". " in ln.text[:4] and ln.x0 < 18 * MM + 1
        and not any(ch.isdigit() for ch in ln.text.split(". ", 1)[1][:1])
    ]  # fmt: skip
    vi_numbers = numbers[::2]
    assert vi_numbers == list(range(1, len(vi_numbers) + 1)) and 5 in vi_numbers, numbers
    assert "(khác)" in text, "the chart label of the other types is cut"
    (_, total), *_ = doc.find("Tổng / Total")
    (_, sums), *_ = doc.find("884")
    assert total.x1 <= sums.x1 + 1, "'Tổng / Total' overflows its column"
    (page, head), *_ = doc.find("Đại lượng đo")  # the heading of the table under the pie
    for label in ("Khối lượng / Mass (90)", "Áp suất / Pressure (60)", "Nhiệt độ / Temperature"):
        found = doc.find(label)
        assert found, f"the pie's label {label!r} is missing"
        assert found[0][0] == page and found[0][1].y1 < head.y0, f"{label!r} is under the table"
    assert "25000" not in text and "20000\n" not in text, "the paper archive sets the scale"


def test_annual_report_numbers_sections_without_gaps() -> None:
    import dataclasses

    from certissuer.report import render_annual_pdf

    data = dataclasses.replace(_pages.annual(), events=(), calibration_quantities=())
    pdf = render_annual_pdf(data, settings=_pages.lab(), signer_name="A", issued_on=_pages.ISSUED)
    text = subprocess.run(
        ["pdftotext", "-", "-"], input=pdf, check=True, capture_output=True
    ).stdout.decode()
    headings = [line.split(".")[0] for line in text.splitlines() if line[:3].rstrip(". ").isdigit()
                and ". " in line[:4] and not line.split(". ", 1)[1][:1].isdigit()]  # fmt: skip
    vi = [int(h) for h in headings[::2]]
    assert vi == list(range(1, len(vi) + 1)), headings


def test_annual_report_is_dated_the_day_it_is_made_by_default() -> None:
    from certissuer._vn import local_date
    from certissuer.report import render_annual_pdf

    pdf = render_annual_pdf(_pages.annual(), settings=_pages.lab(), signer_name="A")
    text = " ".join(
        subprocess.run(["pdftotext", "-", "-"], input=pdf, check=True, capture_output=True)
        .stdout.decode()
        .split()
    )
    today = local_date(datetime.now(UTC))
    assert f"ngày {today.day:02d} tháng {today.month:02d} năm {today.year}" in text
    if today != date(2026, 11, 20):
        assert "ngày 20 tháng 11 năm 2026" not in text  # not the end of the period
