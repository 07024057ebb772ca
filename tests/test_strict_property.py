"""Property: a mutated certificate is never VALID when what a viewer shows differs.

Hypothesis mutates the bytes and the structure of a genuine, signed verification certificate
(flipped, inserted and deleted bytes; a `startxref` nudged; incremental updates that redefine
the content, listed or not, or add a widget with any /Rect) and checks that whenever the
verdict is VALID, poppler's pdftotext text, the page count and the annotations (as qpdf reads
them, repairing if it must) are those of the genuine file.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pikepdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic

from certissuer.errors import VerificationFailed
from certissuer.verify import Verdict

from . import _forge
from . import test_attacks as _attacks
from .test_attacks import _FORGED, Lab

# The corpus's module fixtures, shared (each test module gets its own instances).
lab, lab_ledger, lab_env = _attacks.lab, _attacks.lab_ledger, _attacks.lab_env


def _seen(data: bytes) -> tuple[str, int | None, Any]:
    """What a viewer shows: the text, the number of pages and the annotations."""
    text = _forge.pdftotext(data)
    try:
        with pikepdf.open(BytesIO(data)) as pdf:
            pages = len(pdf.pages)
            annots = [
                [
                    (str(a.get("/Subtype")), repr(a.get("/Rect")), repr(a.get("/AP")))
                    for a in page.obj.get("/Annots", [])
                ]
                for page in pdf.pages
            ]
    except Exception:
        pages, annots = None, None
    return text, pages, annots


@st.composite
def _mutation(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(
        st.sampled_from(["flip", "insert", "delete", "startxref", "unlisted", "update", "widget"])
    )
    size = len(data)
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, size - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if kind == "insert":
        at = draw(st.integers(0, size))
        return data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at:]
    if kind == "delete":
        at = draw(st.integers(0, size - 1))
        return data[:at] + data[at + draw(st.integers(1, 16)) :]
    shift = draw(st.integers(-10, 10))
    if kind == "startxref":
        update = _forge.with_dss(data, {})
        return _forge.append_revision(data, update, startxref_shift=shift)
    number, content = _forge.forged_content(data, _FORGED["kd"][: draw(st.integers(1, 2))])
    forged = _forge.definition(number, _forge.stream(content))
    if kind == "unlisted":
        update = _forge.with_dss(data, {})
        return _forge.append_revision(data, update, unlisted=forged, startxref_shift=shift)
    if kind == "update":
        return _forge.append_revision(data, _forge.with_dss(data, {number: _forge.stream(content)}))
    rect = draw(
        st.sampled_from([b"null", b"[440 648 516 664 0]", b"[440 648 516]", b"[440 648 516 664]"])
    )
    page = _forge.page_ref(data)
    widget = _forge.size_of(data)
    overlay = b"<< /Type /Annot /Subtype /Widget /FT /Sig /T (X) /F 4 /P %d 0 R /Rect %s " % (
        page.idnum,
        rect,
    )
    overlay += b"/MK << /BG [1 1 1] >> >>"
    page_obj = page.get_object()
    copy = generic.DictionaryObject({k: page_obj.raw_get(k) for k in page_obj})
    annots = list.__iter__(page_obj.raw_get("/Annots")) if "/Annots" in page_obj else ()
    copy[generic.NameObject("/Annots")] = generic.ArrayObject([*annots, _forge.ref(widget)])
    objects = {widget: overlay, page.idnum: _forge.serialise(copy)}
    return _forge.append_revision(data, _forge.with_dss(data, objects, widget + 1))


@pytest.fixture(scope="module")
def original(lab_env: Lab) -> tuple[bytes, tuple[str, int | None, Any]]:
    data = lab_env.base("kd")
    return data, _seen(data)


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_valid_only_when_the_viewer_sees_the_original(
    lab_env: Lab, original: tuple[bytes, tuple[str, int | None, Any]], data: st.DataObject
) -> None:
    genuine, seen = original
    mutated = data.draw(_mutation(genuine))
    try:
        verdict = lab_env.verifier().verify_pdf(mutated).verdict
    except VerificationFailed:
        return  # unreadable: refused
    if verdict is Verdict.VALID:
        assert _seen(mutated) == seen
