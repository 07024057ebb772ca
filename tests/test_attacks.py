"""An attack corpus against signed certificates, generated here, each refused with its reason.

Every case is a real PDF made from a genuine certificate (issued into the ledger, so the ledger
cannot be what catches it) and judged by `Verifier` with pyHanko's validator. Each case names
the defences in `certissuer.verify._pades` and `certissuer.verify._strict` that refuse it;
`test_attack_passes_without_its_defence` switches exactly those off and shows that the case
then gets through (the verdict turns VALID), so every test here fails if its defence is
switched off. The cases on strict reading (issue 14) are built from verification (KĐ) and
calibration (HC) certificates with visible signatures; for the parser differentials,
`test_differential_is_real` shows with poppler's pdftotext that viewers read the forged values.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_cms import SimpleSigner

from certissuer.config import Settings
from certissuer.errors import VerificationFailed
from certissuer.issue import Issuer, load_token_key
from certissuer.keys import KeyPaths
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate
from certissuer.sign import Level, Sealer, SigningPolicy, policy_from_settings
from certissuer.verify import Verdict, Verifier, _pades, _strict, load_crls

from . import _forge
from ._pki import LabPKI
from .conftest import PASSPHRASE, SAMPLES, lab_settings, load_json


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_pki: LabPKI, pki: KeyPaths) -> Settings:
    home = tmp_path_factory.mktemp("attack-lab")
    return lab_settings(
        pki,
        ledger=home,
        lab_code="ATK",
        signing_pkcs12=lab_pki.p12("alice", PASSPHRASE),
        signing_trust_roots=(lab_pki.pem("root"),),
        signing_tsa_url=lab_pki.tsa_url,
        signing_appearance="invisible",
    )


@pytest.fixture(scope="module")
def lab_ledger(lab: Settings) -> Ledger:
    return Ledger.open(lab.ledger_url)


@dataclass
class Lab:
    """Issues certificates into the module's ledger with any key and policy."""

    settings: Settings
    ledger: Ledger
    pki: LabPKI
    renderer: Any
    out: Path
    count: int = 0
    bases: dict[str, bytes] = field(default_factory=dict)
    """Genuine certificates that several attacks start from, issued once."""

    def base(self, name: str) -> bytes:
        """A genuine certificate: "kd"/"hc" (verification/calibration) with a visible
        signature."""
        if name not in self.bases:
            kind = {"kd": "verification.json", "hc": "calibration.json"}[name]
            with self.pki.services():
                self.bases[name] = self.issue(self.sealer(visible=True), kind=kind)
        return self.bases[name]

    def issue(self, sealer: Sealer, *, kind: str = "calibration.json", **changes: Any) -> bytes:
        self.count += 1
        data = load_json(SAMPLES / kind)
        data["ref"] = f"attack-{self.count}"
        if data.get("stamp_number"):  # a stamp is used once per lab: each record its own
            data["stamp_number"] = f"ĐT-26 {self.count:07d}"
        settings = self.settings.replace(**changes)
        # The record prints the name of whoever signs it at issue (issue 17: names match).
        if "signatory" in data:
            data["signatory"]["name"] = sealer.signer_name
        else:
            data["verifier" if settings.signing_approval else "head"]["name"] = sealer.signer_name
        issuer = Issuer(
            settings,
            ledger=self.ledger,
            sealer=sealer,
            token_key=load_token_key(settings),
            out_dir=self.out,
            renderer=self.renderer,
        )
        return issuer.issue(parse_certificate(data)).path.read_bytes()

    def sealer(self, label: str = "alice", *, visible: bool = False, **policy: Any) -> Sealer:
        settings = self.settings.replace(signing_appearance="visible") if visible else self.settings
        base = policy_from_settings(settings)
        fields = {"revocation_check": False, **policy}
        return Sealer.from_pkcs12(
            self.pki.p12(label, PASSPHRASE), PASSPHRASE, policy=_replace(base, **fields)
        )

    def verifier(self, **kwargs: Any) -> Verifier:
        verifier = Verifier.from_settings(self.settings, ledger=self.ledger)
        if kwargs:
            verifier = Verifier(
                trust_roots=verifier.trust_roots,
                token_keys=verifier.token_keys,
                ledger=self.ledger,
                **kwargs,
            )
        return verifier


def _replace(policy: SigningPolicy, **changes: Any) -> SigningPolicy:
    from dataclasses import replace

    return replace(policy, **changes)


@pytest.fixture(scope="module")
def lab_env(
    lab: Settings, lab_ledger: Ledger, lab_pki: LabPKI, renderer: Any, tmp_path_factory: Any
) -> Lab:
    return Lab(lab, lab_ledger, lab_pki, renderer, tmp_path_factory.mktemp("attack-out"))


@pytest.fixture(scope="module")
def genuine(lab_env: Lab) -> bytes:
    """A genuine B-B calibration certificate, in the ledger."""
    with lab_env.pki.services():
        return lab_env.issue(lab_env.sealer())


# -- how each attack is made -----------------------------------------------------------------


def _incremental(data: bytes, change: Callable[[IncrementalPdfFileWriter, Any], None]) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(data))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    change(writer, page_ref)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _overlay_stream(writer: IncrementalPdfFileWriter) -> generic.IndirectObject:
    """A white box with "0.00" in it: what a shadow attack puts over a result."""
    return writer.add_object(
        generic.StreamObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/XObject"),
                generic.NameObject("/Subtype"): generic.NameObject("/Form"),
                generic.NameObject("/BBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, 300, 60)]
                ),
            },
            stream_data=b"1 1 1 rg 0 0 300 60 re f 0 g BT /Helv 12 Tf 5 20 Td (0.00) Tj ET",
        )
    )


def _rect() -> generic.ArrayObject:
    return generic.ArrayObject([generic.NumberObject(v) for v in (60, 420, 360, 480)])


def _add_annotation(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    page = page_ref.get_object()
    annot = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Square"),
            generic.NameObject("/Rect"): _rect(),
            generic.NameObject("/F"): generic.NumberObject(4),
            generic.NameObject("/AP"): generic.DictionaryObject(
                {generic.NameObject("/N"): _overlay_stream(writer)}
            ),
        }
    )
    annots = page.get("/Annots", generic.ArrayObject())
    annots = generic.ArrayObject([*annots, writer.add_object(annot)])
    page[generic.NameObject("/Annots")] = annots
    writer.update_container(page)


def _add_field(kind: str) -> Callable[[IncrementalPdfFileWriter, Any], None]:
    def change(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
        page = page_ref.get_object()
        entries = {
            generic.NameObject("/FT"): generic.NameObject(kind),
            generic.NameObject("/T"): generic.TextStringObject("Overlay"),
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Widget"),
            generic.NameObject("/Rect"): _rect(),
            generic.NameObject("/F"): generic.NumberObject(4),
            generic.NameObject("/P"): page_ref,
            generic.NameObject("/AP"): generic.DictionaryObject(
                {generic.NameObject("/N"): _overlay_stream(writer)}
            ),
        }
        if kind == "/Tx":
            entries[generic.NameObject("/V")] = generic.TextStringObject("0.00")
        ref = writer.add_object(generic.DictionaryObject(entries))
        form = writer.root["/AcroForm"]
        form[generic.NameObject("/Fields")] = generic.ArrayObject([*form["/Fields"], ref])
        writer.update_container(form)
        annots = page.get("/Annots", generic.ArrayObject())
        page[generic.NameObject("/Annots")] = generic.ArrayObject([*annots, ref])
        writer.update_container(page)

    return change


def _replace_content(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    page = page_ref.get_object()
    fake = generic.StreamObject(stream_data=b"BT /F1 24 Tf 100 700 Td (PASS 0.000 g) Tj ET")
    page[generic.NameObject("/Contents")] = writer.add_object(fake)
    writer.update_container(page)


def _remove_signature(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    form = writer.root["/AcroForm"]
    form[generic.NameObject("/Fields")] = generic.ArrayObject()
    writer.update_container(form)
    page = page_ref.get_object()
    page[generic.NameObject("/Annots")] = generic.ArrayObject()
    writer.update_container(page)
    _replace_content(writer, page_ref)


def _empty_revision(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    writer.update_root()  # the catalog written again, unchanged: a revision with no content


def _retitle(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    info = writer.trailer["/Info"]
    info[generic.NameObject("/Title")] = generic.TextStringObject("Đạt / PASS")
    writer.update_container(info)


def _unsigned_revision_with_dss(writer: IncrementalPdfFileWriter, page_ref: Any) -> None:
    # A DSS (allowed after signing) smuggling a content change into the same revision.
    writer.root[generic.NameObject("/DSS")] = writer.add_object(generic.DictionaryObject())
    writer.update_root()
    _replace_content(writer, page_ref)


def _wrap_byte_range(lab_env: Lab, data: bytes) -> bytes:
    """Re-sign with the lab's own key over a /ByteRange that stops short of the revision end."""
    match = re.search(rb"/ByteRange\s*\[\s*0 (\d+) (\d+) (\d+)\s*\]", data)
    assert match is not None
    a, b, c = (int(g) for g in match.groups())
    short = f"/ByteRange [0 {a} {b} {c - 120}]".encode()
    short = short.ljust(match.end() - match.start())
    data = data[: match.start()] + short + data[match.end() :]
    covered = data[:a] + data[b : b + c - 120]
    import hashlib

    signer = SimpleSigner.load_pkcs12(
        str(lab_env.pki.p12("alice", PASSPHRASE)), passphrase=PASSPHRASE
    )
    assert signer is not None
    cms = asyncio.run(signer.async_sign(hashlib.sha256(covered).digest(), "sha256", use_pades=True))
    blob = cms.dump().hex().encode()
    room = b - a - 2
    assert len(blob) <= room
    return data[: a + 1] + blob.ljust(room, b"0") + data[b - 1 :]


@dataclass(frozen=True)
class Attack:
    name: str
    make: Callable[[Lab, bytes], tuple[bytes, dict[str, Any]]]
    """Returns the attacked file and keyword arguments for `Verifier.verify_pdf`."""
    verdict: Verdict
    reason: str
    defences: tuple[str, ...]
    verifier: Callable[[Lab], Verifier] = Lab.verifier
    differential: str | None = None
    """For a parser differential: the base ("kd", "hc") whose forged values viewers show."""
    lenient_repairs: bool = True
    """False where even pyHanko's lenient reader cannot repair the file (today's verdict was
    "damaged", not VALID), while viewers still rebuild it by scanning."""


def _update(change: Callable[[IncrementalPdfFileWriter, Any], None]) -> Any:
    return lambda lab_env, data: (_incremental(data, change), {})


def _signed_by(label: str, **policy: Any) -> Any:
    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        with lab_env.pki.services():
            return lab_env.issue(lab_env.sealer(label, **policy)), {}

    return make


def _signed_by_forger(lab_env: Lab, _: bytes, pki: KeyPaths | None = None) -> Any:
    raise NotImplementedError  # replaced by the fixture below


def _expired(lab_env: Lab, data: bytes) -> tuple[bytes, dict[str, Any]]:
    return data, {"at": lab_env.pki.signer_expires + timedelta(days=30)}


def _local_crl(lab_env: Lab) -> Verifier:
    path = lab_env.out / "root.crl"
    crl = lab_env.pki.arch.service_registry.get_crl("root")
    path.write_bytes(crl.dump())
    return lab_env.verifier(crls=load_crls([path]))


ATTACKS = [
    Attack(
        "content changed by an incremental update",
        _update(_replace_content),
        Verdict.ALTERED,
        "the document was changed after it was signed",
        ("_check_modifications", "_check_revisions", "_check_changes"),
    ),
    Attack(
        "shadow: an annotation over the result table",
        _update(_add_annotation),
        Verdict.ALTERED,
        "annotation(s) /Square were added after it was signed",
        ("_check_modifications", "_check_revisions", "_check_changes"),
    ),
    Attack(
        "shadow: a text field overlay over the result table",
        _update(_add_field("/Tx")),
        Verdict.ALTERED,
        "was signed",
        ("_check_modifications", "_check_revisions", "_check_changes"),
    ),
    Attack(
        "shadow: an unsigned signature field whose appearance covers the results",
        _update(_add_field("/Sig")),
        Verdict.ALTERED,
        "form field(s) Overlay were added or filled after it was signed",
        ("_check_modifications", "_check_revisions", "_check_changes"),
    ),
    Attack(
        "signature removed (and the content changed)",
        _update(_remove_signature),
        Verdict.ALTERED,
        "the PDF carries no signature",
        ("_check_signed",),
    ),
    Attack(
        "byte range that does not cover the file (signature wrapping)",
        lambda lab_env, data: (_wrap_byte_range(lab_env, data), {}),
        Verdict.ALTERED,
        "its byte range does not cover the whole revision",
        ("_check_coverage", "_check_modifications"),
    ),
    Attack(
        "a second, unsigned revision appended (empty)",
        _update(_empty_revision),
        Verdict.ALTERED,
        "an unsigned revision was appended",
        ("_check_revisions",),
    ),
    Attack(
        "a second, unsigned revision appended (document information changed)",
        _update(_retitle),
        Verdict.ALTERED,
        "the document information (/Title) was changed after signing",
        ("_check_revisions", "_check_document_info", "_check_changes"),
    ),
    Attack(
        "a content change hidden in a DSS revision",
        _update(_unsigned_revision_with_dss),
        Verdict.ALTERED,
        "the document was changed after it was signed",
        ("_check_modifications", "_check_changes"),
    ),
    Attack(
        "signer not in the trust roots",
        lambda lab_env, data: (lab_env.issue(lab_env.forger), {}),  # type: ignore[attr-defined]
        Verdict.UNKNOWN_SIGNER,
        "does not chain to the lab's trust roots",
        ("_check_trust",),
    ),
    Attack(
        "signer certificate revoked (the lab's local CRL)",
        _signed_by("mallory"),
        Verdict.UNKNOWN_SIGNER,
        "was revoked on",
        ("_check_trust",),
        verifier=_local_crl,
    ),
    Attack(
        "signer certificate revoked (OCSP/CRL fetched from the test PKI)",
        _signed_by("mallory"),
        Verdict.UNKNOWN_SIGNER,
        "was revoked on",
        ("_check_trust",),
        verifier=lambda lab_env: lab_env.verifier(fetch=True),
    ),
    Attack(
        "expired signer without a timestamp",
        _expired,
        Verdict.TIME_NOT_PROVEN,  # not accused of forgery, not shown genuine
        "expired and no trusted timestamp",
        ("_check_trust",),
    ),
    Attack(
        "timestamp from an untrusted TSA",
        lambda lab_env, data: _signed_by(
            "alice", level=Level.B_T, tsa_url=lab_env.pki.rogue_tsa_url
        )(lab_env, data),
        Verdict.UNKNOWN_SIGNER,
        "which is not a trusted time-stamping authority",
        ("_check_timestamp",),
    ),
]


# -- strict reading (issue 14): parser differentials and shadow widgets ------------------------

_FORGED = {
    "kd": [
        (_forge.SERIAL_KD, _forge.FORGED_SERIAL_KD),
        (_forge.VALID_UNTIL_KD, _forge.FORGED_VALID_UNTIL_KD),
    ],
    "hc": [(b"B912345678", b"B911111111")],
}
"""What each forgery writes over the genuine serial number (and valid-until date)."""


def _dss_update(base: str, *, shift: int = 0, unlisted: bool = False) -> Any:
    """A DSS-only update (what pyHanko rates "validation data only") whose startxref is
    `shift` bytes off, optionally after an unlisted object that redefines page 1's content."""

    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        data = lab_env.base(base)
        hidden = b""
        if unlisted:
            number, content = _forge.forged_content(data, _FORGED[base])
            hidden = _forge.definition(number, _forge.stream(content))
        update = _forge.with_dss(data, {})
        return _forge.append_revision(data, update, unlisted=hidden, startxref_shift=shift), {}

    return make


_RECTS = {"null": b"null", "5 numbers": b"[440 648 516 664 0]", "3 numbers": b"[440 648 516]"}


def _shadow_widget(base: str, rect: str, source: str) -> Any:
    """An unsigned signature field over the serial number, with a malformed /Rect, drawn from
    a new appearance stream, a white /MK background, or the lab's own signature appearance."""

    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        data = lab_env.base(base)
        r = _forge.reader(data)
        page_ref = _forge.page_ref(data)
        page = page_ref.get_object()
        size = _forge.size_of(data)
        widget, appearance = size, size + 1
        objects: dict[int, bytes] = {}
        entries = (
            b"/Type /Annot /Subtype /Widget /FT /Sig /T (Overlay) /F 4 /P %d 0 R /Rect %s "
            % (page_ref.idnum, _RECTS[rect])
        )
        if source == "new appearance stream":
            font = page["/Resources"]["/Font"]
            font_ref = font.raw_get(sorted(font)[0])
            draw = (
                b"1 1 1 rg 0 0 76 16 re f 0 g BT /F1 9 Tf 2 4 Td (%s) Tj ET" % _FORGED[base][0][1]
            )
            objects[appearance] = (
                b"<< /Type /XObject /Subtype /Form /BBox [0 0 76 16] "
                b"/Resources << /Font << /F1 %d 0 R >> >> /Length %d >>\nstream\n"
                % (font_ref.idnum, len(draw))
                + draw
                + b"\nendstream"
            )
            entries += b"/AP << /N %d 0 R >> " % appearance
        elif source == "/MK background":
            entries += b"/MK << /BG [1 1 1] >> "
        else:  # the lab's own visible signature appearance, re-used
            fields = [f.get_object() for f in list.__iter__(r.root["/AcroForm"]["/Fields"])]
            lab_field = next(f for f in fields if "/AP" in f)
            entries += b"/AP << /N %d 0 R >> " % lab_field["/AP"].raw_get("/N").idnum
        objects[widget] = b"<< " + entries + b">>"
        page_copy = generic.DictionaryObject({k: page.raw_get(k) for k in page})
        annots = list.__iter__(page.raw_get("/Annots")) if "/Annots" in page else ()
        page_copy[generic.NameObject("/Annots")] = generic.ArrayObject(
            [*annots, _forge.ref(widget)]
        )
        objects[page_ref.idnum] = _forge.serialise(page_copy)
        form_ref = r.root.raw_get("/AcroForm")
        form = form_ref.get_object()
        form_copy = generic.DictionaryObject({k: form.raw_get(k) for k in form})
        form_copy[generic.NameObject("/Fields")] = generic.ArrayObject(
            [*list.__iter__(form.raw_get("/Fields")), _forge.ref(widget)]
        )
        objects[form_ref.idnum] = _forge.serialise(form_copy)
        return _forge.append_revision(data, _forge.with_dss(data, objects, size + 2)), {}

    return make


def _content_in_object_stream(base: str) -> Any:
    """Page 1's content stream object redefined, inside an object stream of an update with a
    cross-reference stream, as an array that points at a forged stream."""

    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        data = lab_env.base(base)
        number, content = _forge.forged_content(data, _FORGED[base])
        size = _forge.size_of(data)
        forged, dss = size, size + 1
        root, catalog = _forge.catalog_with(data, DSS=_forge.ref(dss))
        packed = {number: b"[%d 0 R]" % forged, root: catalog, dss: b"<< /Certs [] >>"}
        return _forge.append_objstm_revision(data, {forged: _forge.stream(content)}, packed), {}

    return make


def _dss_redefining_content(base: str) -> Any:
    """A DSS-only-looking update that also redefines page 1's content stream in place."""

    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        data = lab_env.base(base)
        number, content = _forge.forged_content(data, _FORGED[base])
        update = _forge.with_dss(data, {number: _forge.stream(content)})
        return _forge.append_revision(data, update), {}

    return make


def _free_number_defined(base: str) -> Any:
    """A DSS update that defines an object number the signed revision had free (a signed
    reference to it would have meant null when signed)."""

    def make(lab_env: Lab, _: bytes) -> tuple[bytes, dict[str, Any]]:
        data = lab_env.base(base)
        final = _strict.final_locations(_forge.reader(data))
        free = min(n for n in range(1, _forge.size_of(data)) if final.get(n, (0, None))[1] is None)
        update = _forge.with_dss(data, {free: b"<< /Forged true >>"})
        return _forge.append_revision(data, update), {}

    return make


_XREF = (
    "_strict.strict_reader",
    "_strict.check_last_startxref",
    "_strict.check_xref_offsets",
)
_UNLISTED = ("_strict.check_object_definitions", "_check_rebuild")

STRICT_ATTACKS = [
    *(
        Attack(
            f"{base.upper()}: startxref {shift:+d} bytes off, DSS-only update",
            _dss_update(base, shift=shift),
            Verdict.ALTERED,
            "does not point exactly at its cross-reference section",
            _XREF,
        )
        for base, shift in (("kd", 1), ("kd", -3), ("hc", 3))
    ),
    *(
        Attack(
            f"{base.upper()}: startxref {shift:+d} bytes off (past lenient repair), "
            + ("unlisted object redefines the serial number" if unlisted else "DSS-only update"),
            _dss_update(base, shift=shift, unlisted=unlisted),
            Verdict.ALTERED,
            "does not point exactly at its cross-reference section",
            (*_XREF, *_UNLISTED),
            differential=base if unlisted else None,
            lenient_repairs=False,
        )
        for base, shift, unlisted in (
            ("kd", -10, False),
            ("hc", 5, False),
            ("kd", 7, True),
            ("kd", -10, True),
        )
    ),
    *(
        Attack(
            f"{base.upper()}: startxref {shift:+d} bytes off, unlisted object redefines the "
            "serial number",
            _dss_update(base, shift=shift, unlisted=True),
            Verdict.ALTERED,
            "does not point exactly at its cross-reference section",
            (*_XREF, *_UNLISTED),
            differential=base,
        )
        for base, shift in (("kd", 1), ("kd", 3), ("kd", -3), ("hc", 3))
    ),
    *(
        Attack(
            f"{base.upper()}: unlisted object redefines the serial number, startxref correct",
            _dss_update(base, unlisted=True),
            Verdict.ALTERED,
            "is not in any cross-reference section",
            _UNLISTED,
        )
        for base in ("kd", "hc")
    ),
    *(
        Attack(
            f"KD: shadow widget, /Rect {rect}, {source}",
            _shadow_widget("kd", rect, source),
            Verdict.ALTERED,
            "were added or filled after it was signed"
            if source == "new appearance stream"
            else "has a /Rect that is not four numbers",
            ("_check_changes", "_check_modifications"),
        )
        for rect in _RECTS
        for source in ("new appearance stream", "/MK background", "lab's signature appearance")
    ),
    Attack(
        "HC: shadow widget, /Rect null, lab's signature appearance",
        _shadow_widget("hc", "null", "lab's signature appearance"),
        Verdict.ALTERED,
        "has a /Rect that is not four numbers",
        ("_check_changes", "_check_modifications"),
    ),
    *(
        Attack(
            f"{base.upper()}: content stream redefined in an object stream",
            _content_in_object_stream(base),
            Verdict.ALTERED,
            "lies in an object stream (a rebuilding reader and a strict one see different",
            (*_UNLISTED, "_check_modifications", "_check_changes"),
            differential=base,
        )
        for base in ("kd", "hc")
    ),
    *(
        Attack(
            f"{base.upper()}: DSS-only-looking update that redefines the content stream",
            _dss_redefining_content(base),
            Verdict.ALTERED,
            "the document was changed after it was signed",
            ("_check_modifications", "_check_changes"),
            differential=base,
        )
        for base in ("kd", "hc")
    ),
]
STRICT_ATTACKS.append(
    Attack(
        "KD: an object number free when signed is defined in a DSS update",
        _free_number_defined("kd"),
        Verdict.ALTERED,
        "the document was changed after it was signed",
        ("_check_modifications", "_check_changes"),
    )
)
ATTACKS += STRICT_ATTACKS


@pytest.fixture(scope="module")
def corpus(
    lab_env: Lab, genuine: bytes, other_pki: KeyPaths
) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """Each attack's file, made once."""
    lab_env.forger = Sealer.from_pkcs12(other_pki.signer_p12, PASSPHRASE)  # type: ignore[attr-defined]
    return {attack.name: attack.make(lab_env, genuine) for attack in ATTACKS}


def _judge(attack: Attack, lab_env: Lab, corpus: dict[str, Any]) -> Any:
    data, kwargs = corpus[attack.name]
    verifier = attack.verifier(lab_env)
    with lab_env.pki.services():  # for the case that fetches; the others never ask
        return verifier.verify_pdf(data, **kwargs)


def test_genuine_certificate_is_valid(lab_env: Lab, genuine: bytes) -> None:
    report = lab_env.verifier().verify_pdf(genuine)
    assert report.verdict is Verdict.VALID, report.reasons


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_is_refused_with_its_reason(
    attack: Attack, lab_env: Lab, corpus: dict[str, Any]
) -> None:
    report = _judge(attack, lab_env, corpus)
    assert report.verdict is attack.verdict, report.reasons
    assert any(attack.reason in r for r in report.reasons), report.reasons
    assert not report.ok


def _lenient_reader(data: bytes) -> PdfFileReader:
    return PdfFileReader(BytesIO(data), strict=False)


def _switch_off(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch one named defence off ("_check_x" in `_pades`, "_strict.x" in `_strict`)."""
    if name == "_check_trust":
        monkeypatch.setattr(_pades, name, lambda label, status, *a, **k: status)
    elif name == "_strict.strict_reader":
        monkeypatch.setattr(_strict, "strict_reader", _lenient_reader)
    elif name.startswith("_strict."):
        monkeypatch.setattr(_strict, name.removeprefix("_strict."), lambda *a, **k: None)
    else:
        monkeypatch.setattr(_pades, name, lambda *a, **k: None)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_passes_without_its_defence(
    attack: Attack, lab_env: Lab, corpus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switch the named defences off: the attack is no longer refused for that reason."""
    for name in attack.defences:
        _switch_off(name, monkeypatch)
    if not attack.lenient_repairs:
        # pyHanko alone could not read it either: refused, but not for the defence's reason
        try:
            report = _judge(attack, lab_env, corpus)
        except VerificationFailed as exc:
            assert "does not point exactly" not in str(exc)
            return
        assert not any(attack.reason in r for r in report.reasons), report.reasons
        return
    report = _judge(attack, lab_env, corpus)
    assert not any(attack.reason in r for r in report.reasons), report.reasons
    if attack.name not in {
        "signature removed (and the content changed)",
        "byte range that does not cover the file (signature wrapping)",
    }:
        # with its defence off, nothing else stops it: the attack would succeed
        assert report.verdict is Verdict.VALID, report.reasons


DIFFERENTIALS = [a for a in ATTACKS if a.differential is not None]


@pytest.mark.parametrize("attack", DIFFERENTIALS, ids=[a.name for a in DIFFERENTIALS])
def test_differential_is_real(attack: Attack, lab_env: Lab, corpus: dict[str, Any]) -> None:
    """poppler's pdftotext (what a viewer shows) reads the forged values from the attacked
    file and the genuine ones from the genuine file: the attack is real, not a malformed file."""
    assert attack.differential is not None
    genuine_text = _forge.pdftotext(lab_env.base(attack.differential))
    forged_text = _forge.pdftotext(corpus[attack.name][0])
    for old, new in _FORGED[attack.differential]:
        assert old.decode() in genuine_text and new.decode() not in genuine_text
        assert new.decode() in forged_text and old.decode() not in forged_text


def nested_arrays_pdf(depth: int) -> bytes:
    """A well-formed file (exact xref) whose catalog nests `depth` arrays."""
    out = b"%PDF-1.7\n"
    at = len(out)
    body = b"[" * depth + b"]" * depth
    out += _forge.definition(1, b"<< /Type /Catalog /Pages 2 0 R /Deep " + body + b" >>")
    xref = len(out)
    out += b"xref\n0 2\n0000000000 65535 f \n%010d 00000 n \n" % at
    return out + b"trailer\n<< /Size 2 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref


def _xref_stream_index_out_of_order(lab_env: Lab) -> bytes:
    """An update whose cross-reference stream lists its ranges out of order."""
    data = lab_env.base("kd")
    update = _forge.append_objstm_revision(data, {}, _forge.with_dss(data, {}))
    index = re.search(rb"/Index \[([^\]]*)\]", update[len(data) :])
    assert index is not None
    pairs = index.group(1).split(b" ")
    swapped = b" ".join(pairs[2:4] + pairs[0:2] + pairs[4:])
    start = len(data) + index.start(1)
    return update[:start] + swapped + update[start + len(swapped) :]


def test_too_many_revisions_are_refused_before_analysis(lab_env: Lab) -> None:
    data = lab_env.base("kd")
    root, catalog = _forge.catalog_with(data)
    for _ in range(_strict.MAX_REVISIONS):
        data = _forge.append_revision(data, {root: catalog})
    report = lab_env.verifier().verify_pdf(data)
    assert report.verdict is Verdict.ALTERED
    assert any("too many revisions" in r for r in report.reasons), report.reasons
    assert not report.signatures  # refused before any signature was validated


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda lab_env: _xref_stream_index_out_of_order(lab_env), id="/Index"),
        pytest.param(lambda lab_env: nested_arrays_pdf(100_000), id="100,000 nested arrays"),
        pytest.param(
            lambda lab_env: _forge.append_revision(
                lab_env.base("hc"),
                {1: b"<< /Deep " + b"[" * 100_000 + b"]" * 100_000 + b" >>"},
            ),
            id="100,000 nested arrays in an update",
        ),
    ],
)
def test_malformed_structure_is_unreadable(lab_env: Lab, make: Callable[[Lab], bytes]) -> None:
    """Exit code 8 with a one-line "unreadable" message, never a traceback."""
    with pytest.raises(VerificationFailed) as raised:
        lab_env.verifier().verify_pdf(make(lab_env))
    assert raised.value.exit_code == 8
    message = str(raised.value)
    assert message.startswith("the PDF is unreadable") and "\n" not in message


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[:1000] + b"%%EOF", id="cut off after 1000 bytes"),
        pytest.param(lambda data: data[: len(data) // 2], id="cut in half"),
        pytest.param(lambda data: b"%PDF-1.7\n" + b"garbage " * 100, id="no structure at all"),
    ],
)
def test_a_file_without_a_cross_reference_section_at_its_end_is_altered(
    lab_env: Lab, cut: Callable[[bytes], bytes]
) -> None:
    """Viewers still show such a file (they rebuild it by scanning): it is a damaged or cut
    copy, not the signed document, so the verdict is ALTERED, not "unreadable"."""
    report = lab_env.verifier().verify_pdf(cut(lab_env.base("kd")))
    assert report.verdict is Verdict.ALTERED
    assert any("no cross-reference section" in r for r in report.reasons), report.reasons


def test_corpus_table(lab_env: Lab, corpus: dict[str, Any]) -> None:
    """Print the corpus: case, verdict, reason (run with -s to see it)."""
    rows = []
    for attack in ATTACKS:
        report = _judge(attack, lab_env, corpus)
        reason = report.reasons[-1].splitlines()[0]
        rows.append(f"| {attack.name} | {report.verdict.value} | {reason} |")
        assert not report.ok
    print("\n| case | verdict | reason |\n|---|---|---|\n" + "\n".join(rows))


def _pyhanko_dss_update(lab_env: Lab) -> bytes:
    """A DSS-only update written by pyHanko (the lab's CA certificate and CRL)."""
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    data = lab_env.base("kd")
    out = BytesIO(data)
    crl = lab_env.pki.arch.service_registry.get_crl("root")
    root = lab_env.pki.arch.get_cert("root")
    DocumentSecurityStore.add_dss(out, None, certs=[root], crls=[crl], force_write=True)
    return out.getvalue()


def _approved(lab_env: Lab, kind: str) -> bytes:
    """A certificate with the head's approval signature in its reserved field, the approval
    recorded in the ledger (as `certissuer sign-approve` does)."""
    with lab_env.pki.services():
        issued = lab_env.issue(lab_env.sealer(visible=True), kind=kind, signing_approval=True)
        approved = lab_env.sealer("bob").approve(issued, field_name="Approval")
    (entry,) = lab_env.ledger.entries(limit=1)  # the one just issued
    lab_env.ledger.approve(
        entry.number,
        approver="Lê Hoàng Phúc",
        at=datetime.now(UTC),
        ledger_key=load_token_key(lab_env.settings),
    )
    return approved


def _issued_at(level: Level, kind: str) -> Callable[[Lab], bytes]:
    def make(lab_env: Lab) -> bytes:
        with lab_env.pki.services():
            return lab_env.issue(lab_env.sealer(visible=True, level=level), kind=kind)

    return make


CONTROLS: dict[str, Callable[[Lab], bytes]] = {
    "KD: genuine B-B, visible signature": lambda lab_env: lab_env.base("kd"),
    "HC: genuine B-B, visible signature": lambda lab_env: lab_env.base("hc"),
    "KD: genuine B-T": _issued_at(Level.B_T, "verification.json"),
    "HC: genuine B-LT (DSS update)": _issued_at(Level.B_LT, "calibration.json"),
    "KD: genuine B-LTA (DSS update + document timestamp)": _issued_at(
        Level.B_LTA, "verification.json"
    ),
    "HC: genuine B-LTA (DSS update + document timestamp)": _issued_at(
        Level.B_LTA, "calibration.json"
    ),
    "KD: approval signature added (sign-approve)": lambda lab_env: _approved(
        lab_env, "verification.json"
    ),
    "KD: DSS-only update written by pyHanko": _pyhanko_dss_update,
}


@pytest.mark.parametrize("make", CONTROLS.values(), ids=list(CONTROLS))
def test_control_stays_valid(lab_env: Lab, make: Callable[[Lab], bytes]) -> None:
    """Genuine files and the updates a lab makes pass every strict check."""
    data = make(lab_env)
    with lab_env.pki.services():
        report = lab_env.verifier().verify_pdf(data)
    assert report.verdict is Verdict.VALID, report.reasons


@pytest.mark.parametrize("base", ["kd", "hc"])
def test_rebuilding_reader_alone_catches_unlisted_objects(
    base: str, lab_env: Lab, corpus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """qpdf, rebuilding by scanning, is a second, independent defence: with the byte scan
    switched off it still sees the forged object (and with both off the file passes)."""
    name = f"{base.upper()}: unlisted object redefines the serial number, startxref correct"
    _switch_off("_strict.check_object_definitions", monkeypatch)
    report = lab_env.verifier().verify_pdf(corpus[name][0])
    assert report.verdict is Verdict.ALTERED
    assert any("reads differently when the file is rebuilt" in r for r in report.reasons)


def test_revision_cap_saves_the_analysis(lab_env: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the cap, every signature of a 35-revision file is validated first."""
    data = lab_env.base("hc")
    root, catalog = _forge.catalog_with(data)
    for _ in range(_strict.MAX_REVISIONS):
        data = _forge.append_revision(data, {root: catalog})
    _switch_off("_strict.check_revision_count", monkeypatch)
    report = lab_env.verifier().verify_pdf(data)
    assert report.signatures and not any("too many revisions" in r for r in report.reasons)
