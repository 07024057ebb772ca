"""Recall lists from the register: to the terminal, CSV, XLSX, or one reminder letter per owner.

`Register.recall` finds the instruments whose verification certificate expires within a window
(or has expired), grouped by owner, and the lab's reference standards falling due
(`parse_window` reads the window as people write it). This module also writes that list out:

>>> recall = register.recall(within_days=30, today=date(2026, 12, 1))  # doctest: +SKIP
>>> write_recall(recall, RecallFormat.PDF, Path("letters.pdf"), settings=settings)  # doctest: +SKIP

The PDF has one bilingual letter (Vietnamese first, English beneath) per owner, then one page
for the lab itself listing its standards due for calibration. It is built with reportlab and
the Be Vietnam Pro font (embedded, subset) that certificates use.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from certissuer._files import write_atomic
from certissuer._tables import write_table
from certissuer._vn import dmy
from certissuer.config import Settings
from certissuer.errors import InputError, TemplateError
from certissuer.registry.base import RegisterBase
from certissuer.registry.checks import add_months
from certissuer.registry.tables import Instrument, InstrumentType, Owner, RegisteredStandard

__all__ = [
    "COLUMNS",
    "Recall",
    "RecallFormat",
    "RecallGroup",
    "RecallItem",
    "RegisterRecall",
    "parse_window",
    "recall_pdf",
    "recall_rows",
    "write_recall",
]


@dataclass(frozen=True, slots=True)
class RecallItem:
    """One instrument due (or overdue) for verification, or one standard due for calibration."""

    owner_code: str
    owner_name: str
    owner_address: str
    type_code: str
    type_name: str
    name: str
    model: str
    serial: str
    place_of_use: str
    last_certificate: str
    valid_until: date
    overdue: bool
    """True when the certificate has already expired (valid_until before today)."""


@dataclass(frozen=True, slots=True)
class RecallGroup:
    """The instruments of one owner on a recall list."""

    owner_code: str
    owner_name: str
    owner_address: str
    items: list[RecallItem]


@dataclass(frozen=True, slots=True)
class Recall:
    """A recall list: instruments grouped by owner, and the lab's standards falling due."""

    today: date
    until: date
    """The last day of the window: certificates valid until this day or earlier are listed."""
    groups: list[RecallGroup]
    standards: list[RegisteredStandard]

    @property
    def count(self) -> int:
        """Number of instruments listed."""
        return sum(len(g.items) for g in self.groups)


class RegisterRecall(RegisterBase):
    """The recall list of the register."""

    def recall(
        self,
        *,
        within_days: int,
        today: date,
        owner: str | None = None,
        type_code: str | None = None,
    ) -> Recall:
        """Instruments whose certificate expires within `within_days` of `today`, or has
        expired, grouped by owner; and this lab's standards due in the same window.

        An instrument is listed when its latest certificate is valid until ``today +
        within_days`` or earlier (valid_until is the last valid day). Instruments never
        certified are not listed. `owner` keeps one owner (its code, or its exact name);
        `type_code` one instrument type. Groups are ordered by owner name, items by
        valid-until date and serial.
        """
        until = today + timedelta(days=within_days)
        with self.session() as s:
            query = (
                sa_select(
                    col(Owner.code),
                    col(Owner.name),
                    col(Owner.address),
                    col(Instrument.type_code),
                    col(InstrumentType.name_vi),
                    col(Instrument.name),
                    col(Instrument.model),
                    col(Instrument.serial),
                    col(Instrument.place_of_use),
                    col(Instrument.last_certificate),
                    col(Instrument.valid_until),
                )
                .select_from(Instrument)
                .join(Owner, col(Owner.id) == col(Instrument.owner_id))
                .outerjoin(InstrumentType, col(InstrumentType.code) == col(Instrument.type_code))
                .where(col(Instrument.valid_until) <= until)
            )
            if owner:
                query = query.where(or_(col(Owner.code) == owner, col(Owner.name) == owner))
            if type_code:
                query = query.where(col(Instrument.type_code) == type_code)
            query = query.order_by(
                col(Owner.name),
                col(Owner.code),
                col(Instrument.valid_until),
                col(Instrument.serial),
                col(Instrument.id),
            )
            rows = s.execute(query).all()
            standards = list(
                s.exec(
                    select(RegisteredStandard)
                    .where(
                        RegisteredStandard.lab_code == self.lab_code,
                        col(RegisteredStandard.calibration_due) <= until,
                    )
                    .order_by(col(RegisteredStandard.calibration_due), col(RegisteredStandard.code))
                ).all()
            )
        groups: list[RecallGroup] = []
        for row in rows:
            code, name, address, tcode, tname, iname, model, serial, place, last, valid = row
            assert valid is not None
            item = RecallItem(
                code,
                name,
                address,
                tcode,
                tname or tcode,
                iname,
                model,
                serial,
                place,
                last or "",
                valid,
                valid < today,
            )
            if not groups or groups[-1].owner_code != code:
                groups.append(RecallGroup(code, name, address, []))
            groups[-1].items.append(item)
        return Recall(today=today, until=until, groups=groups, standards=standards)


def parse_window(text: str, today: date) -> int:
    """Days in a recall window written ``30d``, ``6w``, ``3m`` (calendar months) or ``30``.

    Raises `InputError` for anything else.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([dwm]?)\s*", text.lower())
    if match is None:
        raise InputError("--within", f"expected a window such as 30d, 6w or 3m, got '{text}'")
    n, unit = int(match[1]), match[2] or "d"
    if unit == "m":
        return (add_months(today, n) - today).days
    return n * (7 if unit == "w" else 1)


COLUMNS = (
    "what",
    "owner_code",
    "owner_name",
    "owner_address",
    "type_code",
    "type_name",
    "name",
    "model",
    "serial",
    "place_of_use",
    "last_certificate",
    "valid_until",
    "status",
)
"""Columns of the CSV and XLSX recall lists. ``what`` is ``instrument`` or ``standard`` (the
lab's own standards, with the calibration certificate and its due date); ``status`` is
``expired`` (the date has passed) or ``due``."""


class RecallFormat(StrEnum):
    """Where ``certissuer recall`` writes the list."""

    TABLE = "table"
    CSV = "csv"
    XLSX = "xlsx"
    PDF = "pdf"


def _status(item: RecallItem) -> str:
    return "expired" if item.overdue else "due"


def recall_rows(recall: Recall, *, lab_code: str = "") -> Iterator[list[str]]:
    """The rows of the recall list in `COLUMNS` order: instruments by owner, then standards."""
    for group in recall.groups:
        for i in group.items:
            yield [
                "instrument",
                i.owner_code,
                i.owner_name,
                i.owner_address,
                i.type_code,
                i.type_name,
                i.name,
                i.model,
                i.serial,
                i.place_of_use,
                i.last_certificate,
                i.valid_until.isoformat(),
                _status(i),
            ]
    for s in recall.standards:
        yield [
            "standard",
            lab_code,
            "",
            "",
            "",
            "",
            s.name,
            "",
            s.serial,
            "",
            s.certificate_number,
            s.calibration_due.isoformat(),
            "expired" if s.calibration_due < recall.today else "due",
        ]


def write_recall(
    recall: Recall, fmt: RecallFormat, out: Path, *, settings: Settings | None = None
) -> None:
    """Write `recall` to `out` as CSV, XLSX or PDF letters (`settings`: the lab's letterhead).

    Raises `TemplateError` when the font for the letters is missing.
    """
    lab_code = settings.lab_code if settings else ""
    if fmt is RecallFormat.PDF:
        data = recall_pdf(recall, settings or Settings())
        write_atomic(out, data)
        return
    if fmt is RecallFormat.TABLE:
        raise ValueError("a table is printed, not written to a file")
    path = out if out.suffix.lower() == f".{fmt.value}" else out.with_suffix(f".{fmt.value}")
    write_table(path, COLUMNS, recall_rows(recall, lab_code=lab_code), sheet="recall")


def recall_pdf(recall: Recall, settings: Settings) -> bytes:
    """The recall letters as one PDF (one letter per owner), laid out with reportlab.

    reportlab's font registry is process-wide and a certificate render resets it: the letters
    are laid out under the same lock as every render.
    """
    from certissuer.render import reportlab_lock

    with reportlab_lock:
        return _recall_pdf(recall, settings)


def _recall_pdf(recall: Recall, settings: Settings) -> bytes:
    """One bilingual reminder letter per owner, then the lab's standards due, as PDF bytes."""
    from xml.sax.saxutils import escape

    import fontpkg
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import (
        PageBreak,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    try:
        for face, weight, style in (
            ("BeVietnamPro", 400, "normal"),
            ("BeVietnamPro-Bold", 700, "normal"),
            ("BeVietnamPro-Italic", 400, "italic"),
        ):
            if face not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(
                    TTFont(face, str(fontpkg.path("Be Vietnam Pro", weight, style)))
                )
    except Exception as exc:  # fontpkg and reportlab raise their own types
        raise TemplateError(
            f"the font 'Be Vietnam Pro' for the recall letters is missing: {exc}",
            hint="pip install fontpkg-be-vietnam-pro",
        ) from exc
    pdfmetrics.registerFontFamily(
        "BeVietnamPro",
        normal="BeVietnamPro",
        bold="BeVietnamPro-Bold",
        italic="BeVietnamPro-Italic",
        boldItalic="BeVietnamPro-Bold",
    )
    base = ParagraphStyle("n", fontName="BeVietnamPro", fontSize=9.5, leading=12.5)
    en = ParagraphStyle(
        "en",
        parent=base,
        fontName="BeVietnamPro-Italic",
        fontSize=8,
        leading=10,
        textColor=colors.HexColor("#555555"),
    )
    head = ParagraphStyle(
        "h",
        parent=base,
        fontName="BeVietnamPro-Bold",
        fontSize=10.5,
        leading=13,
        textColor=colors.HexColor("#1f3b63"),
    )
    title = ParagraphStyle("t", parent=head, fontSize=13, leading=16, alignment=1)
    cell = ParagraphStyle("c", parent=base, fontSize=8, leading=9.5)

    def p(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(text), style)

    def letterhead() -> list[Any]:
        parts = [p(settings.lab_name_vi, head), p(settings.lab_name_en, en)]
        if settings.lab_address_vi:
            parts.append(p(settings.lab_address_vi, cell))
        return [*parts, Spacer(1, 4 * mm)]

    def whole(text: str, width: float) -> Paragraph:
        """A certificate number on one line: in a smaller size when it is wider than its
        column (`width` in mm), never broken (a reader copies it whole)."""
        room = width * mm - 12  # the table's cell padding, 6 pt a side
        size = cell.fontSize
        while size > 5 and pdfmetrics.stringWidth(text, cell.fontName, size) > room:
            size -= 0.5
        style = ParagraphStyle("n", parent=cell, fontSize=size, leading=max(size + 1.5, 7))
        return Paragraph(escape(text), style)

    def table(
        header: list[tuple[str, str]],
        rows: list[list[str]],
        widths: list[float],
        numbers: tuple[int, ...] = (),
    ) -> Table:
        """A table with a bilingual `header`; the cells of columns `numbers` are certificate
        numbers, kept on one line."""
        top = [Paragraph(f"<b>{escape(vi)}</b><br/><i>{escape(e)}</i>", cell) for vi, e in header]
        body = [
            [whole(c, widths[n]) if n in numbers else p(c, cell) for n, c in enumerate(row)]
            for row in rows
        ]
        t = Table([top, *body], colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), "BeVietnamPro", 8),
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#7f8c9d")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf4")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    today, until = dmy(recall.today), dmy(recall.until)
    story: list[Any] = []
    for group in recall.groups:
        if story:
            story.append(PageBreak())
        story += letterhead()
        story += [
            p(
                f"{settings.lab_place}, ngày {recall.today.day} tháng {recall.today.month} năm "
                f"{recall.today.year}",
                en,
            ),
            Spacer(1, 3 * mm),
            p("THÔNG BÁO KIỂM ĐỊNH ĐỊNH KỲ PHƯƠNG TIỆN ĐO", title),
            p("NOTICE OF PERIODIC VERIFICATION OF MEASURING INSTRUMENTS", en),
            Spacer(1, 4 * mm),
            p(f"Kính gửi / To: {group.owner_name}", head),
        ]
        if group.owner_address:
            story.append(p(group.owner_address))
        story += [
            Spacer(1, 3 * mm),
            p(
                f"Các phương tiện đo dưới đây của quý cơ sở có giấy chứng nhận kiểm định hết hiệu "
                f"lực hoặc sẽ hết hiệu lực đến ngày {until}. Đề nghị quý cơ sở đăng ký kiểm định "
                "định kỳ trước ngày hết hạn (Luật Đo lường 2011; Thông tư 23/2013/TT-BKHCN)."
            ),
            p(
                f"The verification certificates of the measuring instruments below have expired "
                f"or expire by {until}. Please book their periodic verification before that date "
                "(Law on Metrology 2011; Circular 23/2013/TT-BKHCN).",
                en,
            ),
            Spacer(1, 3 * mm),
        ]
        rows = [
            [
                f"{i.type_name}" + (f" – {i.name}" if i.name else ""),
                " ".join(x for x in (i.model, i.serial) if x),
                i.place_of_use,
                i.last_certificate,
                dmy(i.valid_until) + (" (hết hạn / expired)" if i.overdue else ""),
            ]
            for i in group.items
        ]
        story.append(
            table(
                [
                    ("Phương tiện đo", "Instrument"),
                    ("Kiểu – Số", "Model – Serial No."),
                    ("Địa điểm sử dụng", "Place of use"),
                    ("Giấy chứng nhận", "Certificate"),
                    ("Có giá trị đến", "Valid until"),
                ],
                rows,
                [46, 34, 36, 34, 24],
                numbers=(3,),
            )
        )
        story += [
            Spacer(1, 6 * mm),
            p(f"Danh sách lập ngày {today}. / List drawn up on {today}.", en),
        ]
    if recall.standards:
        if story:
            story.append(PageBreak())
        story += letterhead()
        story += [
            p("CHUẨN ĐO LƯỜNG ĐẾN HẠN HIỆU CHUẨN", title),
            p("REFERENCE STANDARDS DUE FOR CALIBRATION", en),
            Spacer(1, 4 * mm),
            table(
                [
                    ("Chuẩn", "Standard"),
                    ("Số", "Serial No."),
                    ("Giấy chứng nhận", "Certificate"),
                    ("Hạn hiệu chuẩn", "Calibration due"),
                ],
                [
                    [
                        s.name,
                        s.serial,
                        s.certificate_number,
                        dmy(s.calibration_due)
                        + (" (quá hạn / overdue)" if s.calibration_due < recall.today else ""),
                    ]
                    for s in recall.standards
                ],
                [70, 30, 40, 34],
                numbers=(2,),
            ),
        ]
    if not story:
        story = [
            *letterhead(),
            p(f"Không có phương tiện đo nào đến hạn đến ngày {until}."),
            p(f"No instrument is due by {until}.", en),
        ]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title="Thông báo kiểm định / Verification notice",
        author=settings.lab_name_vi,
        invariant=1,
        # reportlab declares its initial font (Helvetica, not embedded) unless told otherwise
        initialFontName="BeVietnamPro",
    )
    doc.build(story)
    return buffer.getvalue()
