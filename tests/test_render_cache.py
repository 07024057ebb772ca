"""certissuer.render: the paragraph cache changes how fast a certificate renders, never what.

Labels, headings, statements and the lab header are parsed and broken into lines once per
renderer (`render._z3c.CachedParagraph`). These tests hold the cached renderer to the bytes of
an uncached one, and check that paragraphs with per-page content are never reused.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import z3c.rml.paraparser

from certissuer.model import parse_certificate
from certissuer.render import Renderer, _z3c

from .conftest import lab_settings

ROOT = Path(__file__).resolve().parent.parent
ISSUED = date(2026, 11, 27)
QR_URL = "https://kiemdinh.example.vn/v/" + "eyJhbGciOiJFZERTQSJ9" * 9
LAB = lab_settings(
    lab_name_vi="Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng Đồng Tháp",
    lab_name_en="Dong Thap Technical Centre for Standards, Metrology and Quality",
    lab_address_vi="Số 12, đường 30 Tháng 4, phường Cao Lãnh, tỉnh Đồng Tháp",
    lab_place="Đồng Tháp",
    lab_accreditation="VILAS 000",
)


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (ROOT / "samples" / name).read_text(encoding="utf-8"), parse_float=Decimal
    )
    return data


def _variants() -> list[dict[str, Any]]:
    """Both kinds, a long name that wraps differently, and a results table over pages."""
    cal, ver = _load("calibration.json"), _load("verification.json")
    base = cal["results"][0]
    many = [
        {**base, "nominal": str(i), "measured": f"{i}.00347", "uncertainty": "0.0123"}
        for i in range(10, 130)
    ]
    long_name = {**cal["customer"], "name": "Công ty TNHH Đo lường chính xác " * 5}
    return [
        cal,
        ver,
        {**cal, "results": many},
        {**cal, "customer": long_name},
        {**ver, "owner": {**ver["owner"], "name": "Hợp tác xã nông nghiệp sạch " * 4}},
    ]


def _render(rend: Renderer, data: dict[str, Any], number: str) -> bytes:
    return rend.render_pdf(
        parse_certificate(data), number=number, issued=ISSUED, qr_url=QR_URL, settings=LAB
    )


def test_cached_renders_are_byte_identical_to_uncached_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cached, plain = Renderer(), Renderer()
    monkeypatch.setattr(plain._cache, "paragraphs", None)  # the cache switched off
    variants = _variants()
    # three rounds, in turn: the second keeps what the first met, the third is served from it
    for round_ in range(3):
        for i, data in enumerate(variants):
            number = f"HC-2026-{round_ * 10 + i:06d}"
            assert _render(cached, data, number) == _render(plain, data, number), (round_, i)
    assert cached._cache.paragraphs.parsed, "the cache was never filled"


def test_second_certificate_parses_only_its_own_values(monkeypatch: pytest.MonkeyPatch) -> None:
    parses: list[str] = []
    original = z3c.rml.paraparser.Z3CParagraph._setup

    def counting(self: Any, text: Any, *args: Any, **kwargs: Any) -> Any:
        parses.append(text)
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(z3c.rml.paraparser.Z3CParagraph, "_setup", counting)
    rend = Renderer()
    cal = _load("calibration.json")
    _render(rend, cal, "HC-2026-000001")
    first = len(parses)
    _render(rend, {**cal, "customer": {**cal["customer"], "name": "Cơ sở Tân Phú"}}, "HC-2")
    parses.clear()
    _render(rend, {**cal, "customer": {**cal["customer"], "name": "Cơ sở Minh Phát"}}, "HC-3")
    assert first > 40
    # the new customer name, the new number line and the QR's URL line: not the labels
    assert 0 < len(parses) < first // 4, parses
    assert any("Minh Phát" in str(text) for text in parses)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_paragraph_with_page_number_is_drawn_anew_on_every_page(tmp_path: Path) -> None:
    folder = tmp_path / "lab-templates"
    folder.mkdir()
    (folder / "verification.rml.j2").write_text(
        '<document filename="x.pdf"><docinit>'
        '<registerTTFont faceName="Body" fileName="{{ fonts.regular }}"/></docinit>'
        '<template><pageTemplate id="p"><pageGraphics>'
        '<place x="20mm" y="10mm" width="100mm" height="10mm">'
        "<para>Trang <pageNumber/></para><para>Phòng thí nghiệm</para></place>"
        "</pageGraphics>"
        '<frame id="f" x1="20mm" y1="30mm" width="170mm" height="240mm"/></pageTemplate>'
        '</template><stylesheet><paraStyle name="Normal" fontName="Body"/></stylesheet>'
        "<story><para>một</para><nextPage/><para>hai</para><nextPage/><para>ba</para></story>"
        "</document>",
        encoding="utf-8",
    )
    rend = Renderer(folder)
    for round_ in range(2):  # the second document meets a warm cache
        path = tmp_path / f"pages{round_}.pdf"
        path.write_bytes(_render(rend, _load("verification.json"), "KĐ-1"))
        text = subprocess.run(
            ["pdftotext", str(path), "-"], check=True, capture_output=True, text=True
        ).stdout
        pages = [p for p in text.split("\f") if p.strip()]
        assert [("Trang 1" in p, "Trang 2" in p, "Trang 3" in p) for p in pages] == [
            (True, False, False),
            (False, True, False),
            (False, False, True),
        ]
        assert all("Phòng thí nghiệm" in p for p in pages)


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_z3c, "_MAX_PARAGRAPHS", 8)
    rend = Renderer()
    for i in range(2):
        _render(rend, _load("calibration.json"), f"HC-2026-{i:06d}")
    assert 0 < len(rend._cache.paragraphs.parsed) <= 8
    assert 0 < len(rend._cache.paragraphs.broken) <= 8


def test_texts_met_once_are_not_kept() -> None:
    """A batch's customer names, numbers and QR addresses differ on every certificate: after
    the labels are in, more certificates leave the cache as it was."""
    rend, cal = Renderer(), _load("calibration.json")
    tables = rend._cache.paragraphs

    def customer(i: int) -> dict[str, Any]:
        return {**cal, "customer": {**cal["customer"], "name": f"Hộ kinh doanh số {i}"}}

    # names of one length: a longer one may widen a column and break the labels anew
    for i in range(10, 13):
        _render(rend, customer(i), f"HC-2026-{i:06d}")
    sizes = (len(tables.parsed), len(tables.broken))
    for i in range(13, 25):
        _render(rend, customer(i), f"HC-2026-{i:06d}")
    assert (len(tables.parsed), len(tables.broken)) == sizes


def test_line_breaks_of_a_dead_style_never_serve_a_new_one_with_its_id() -> None:
    """Cache keys hold a style's id; once that style is gone, a new style may get the same id:
    its paragraphs must be broken anew, not handed the old style's lines."""
    from types import SimpleNamespace

    from reportlab.lib.styles import ParagraphStyle

    cache = _z3c.ParagraphCache()
    manager = SimpleNamespace(cache=SimpleNamespace(paragraphs=cache))
    small = ParagraphStyle("small", fontName="Helvetica", fontSize=7, leading=8)
    large = ParagraphStyle("large", fontName="Helvetica", fontSize=14, leading=16)
    text = "Số / No. đo lường chính xác"
    first = _z3c.CachedParagraph(text, small, manager=manager)
    first.wrap(300, 100)
    assert first.blPara.fontSize == 7
    # as if `small` had been freed and `large` allocated at its address
    for table in (cache.parsed, cache.broken):
        for key in list(table):
            table[(key[0], id(large), *key[2:])] = table.pop(key)
    second = _z3c.CachedParagraph(text, large, manager=manager)
    second.wrap(300, 100)
    assert second.blPara.fontSize == 14
