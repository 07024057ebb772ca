"""Issue certificates: number, render, QR token, sign, write, record — all or nothing.

An `Issuer` holds what every certificate of a run needs (settings, ledger, parsed signing key,
token key, compiled templates); build it once and call `Issuer.issue` per certificate.

>>> issuer = Issuer.from_settings(  # doctest: +SKIP
...     settings, passphrase=b"demo", out_dir=Path("out"))
>>> issued = issuer.issue(cert)  # doctest: +SKIP
>>> issued.number, issued.path  # doctest: +SKIP
('HC-2026-000001', PosixPath('out/HC-2026-000001.pdf'))

Guarantees: no PDF without its ledger row, no ledger row without its PDF (apart from a
*pending* row, which holds its number and data and which `Issuer.complete_pending` finishes),
no half-written file (temporary file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

from certissuer._vn import VIETNAM_TZ, file_stem, local_date
from certissuer.config import Role, Settings, TestingScopeLine
from certissuer.dcc import DccWriter
from certissuer.digitise import PaperCopy, append_scans
from certissuer.errors import ConfigError, IssueRefused, LedgerError, SignerRefused
from certissuer.key_register import check_in_use
from certissuer.ledger import (
    FAILED_REVERIFICATION_EN,
    FAILED_REVERIFICATION_VI,
    CertificateEntry,
    Checkpoint,
    FailedVerification,
    Ledger,
    Status,
    process_alive,
    this_claimant,
)
from certissuer.ledger.storage import open_store
from certissuer.model import (
    CalibrationCertificate,
    Replacement,
    TestingReport,
    Verdict,
    VerificationCertificate,
    canonical_json,
    contradictions,
    load_mpe_rules,
    parse_certificate,
)
from certissuer.registry import Clearance, Register, parse_stamp
from certissuer.registry.checks import (
    BASIC_CHECKS,
    CmcLine,
    cmc_problems,
    parse_cmc,
    refuse,
)
from certissuer.render import Renderer
from certissuer.sign import (
    Keyring,
    Sealer,
    SecretSource,
    SignatureSlot,
    env_secret,
    signature_slots,
)
from certissuer.token import INFO_QR_KEY, TokenKey, make_token, verification_url

__all__ = [
    "FailureNotice",
    "Issued",
    "Issuer",
    "NoticeIssued",
    "load_keyring",
    "load_sealer",
    "load_token_key",
    "pdf_filename",
    "signers_of",
    "testing_scope_marked",
    "trial_render",
]

_logger = logging.getLogger(__name__)

Cert = VerificationCertificate | CalibrationCertificate | PaperCopy


@dataclass(frozen=True, slots=True)
class Issued:
    """One certificate that is in the ledger with its signed PDF."""

    number: str
    kind: str
    path: Path
    pdf_sha256: str
    url: str
    reused: bool = False
    """True when the ledger already held this record and nothing new was issued."""
    remark: str = ""
    """For a reused record, what a person must know about it: its status when it is no
    longer valid (revoked, superseded by ...), and a PDF missing from the archive."""
    level: str | None = None
    """The PAdES level this run signed it at (None: an earlier run signed it)."""
    tsa_failure: str | None = None
    """Signed at B-B instead of B-T because no time-stamping authority answered: which were
    asked and why each failed (``[signing] tsa_unavailable = "downgrade"``, issue 17)."""


@dataclass(frozen=True, slots=True)
class FailureNotice:
    """A notice of failed verification (thông báo kết quả kiểm định không đạt).

    An instrument whose verification fails gets no certificate; it gets this notice instead,
    issued like a certificate (its own series, QR token, signature and ledger entry) from
    ``failure.rml.j2``. `result` is the failed verification record, whose canonical JSON is
    the notice's data; `earlier` the number of the instrument's earlier certificate that
    the failure makes no longer valid (None: the ledger holds none).
    """

    result: VerificationCertificate
    earlier: str | None = None
    kind: str = "failure"
    replaces: None = None
    """A notice replaces no certificate (the templates' base asks)."""

    @property
    def ref(self) -> str:
        """The failed record's reference: the notice's idempotency key."""
        return self.result.ref

    @property
    def failing(self) -> list[tuple[int, Any]]:
        """The checks that do not pass, with their 1-based position on the record."""
        return [(i, c) for i, c in enumerate(self.result.checks, 1) if not c.passes]


_Doc = Cert | FailureNotice
"""What the issuer renders, signs and records: a certificate, a copy or a notice."""


class _Prepared(NamedTuple):
    """What `Issuer._prepare` found for a record, before a number is taken."""

    doc: _Doc
    digest: str
    data_json: str
    existing: CertificateEntry | None
    type_code: str | None
    """The instrument type the checks found (verification), for the register's record."""


class NoticeIssued(IssueRefused):
    """A failed instrument was refused a certificate and issued a notice of failure.

    The notice is in the ledger with its signed PDF (`issued`); the record still counts as
    refused (exit 9), so a script sees that this instrument did not pass.
    """

    def __init__(self, message: str, *, issued: Issued) -> None:
        super().__init__(message, hint="remove the instrument's old verification stamp")
        self.issued = issued


def pdf_filename(number: str) -> str:
    """An ASCII file name for `number` ("KĐ-2026-000001" → "KD-2026-000001.pdf")."""
    return f"{file_stem(number)}.pdf"


def _remove_stale_temporaries(folder: Path) -> None:
    # Temporary files are ".<name>.<pid>.tmp"; remove those whose writer no longer runs.
    if not folder.is_dir():
        return
    for tmp in folder.glob(".*.pdf.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def load_sealer(settings: Settings, passphrase: bytes | None) -> Sealer:
    """The lab's `Sealer` from the key (PKCS#12, PEM or PKCS#11) and policy the profile names.

    `passphrase` is the key's passphrase or the token's PIN.
    """
    return Sealer.from_settings(settings, passphrase)


def load_keyring(
    settings: Settings, passphrase: bytes | None, *, secret: SecretSource | None = None
) -> Keyring:
    """The keys of the people who sign, from the profile (``[[people]]`` and ``[signing]``).

    `passphrase` is the ``[signing]`` key's passphrase or PIN; `secret` gives the other keys'
    (default: the variables each key names). Without ``[[people]]`` the ``[signing]`` key is
    opened now, so a wrong passphrase stops a run before anything; people's keys are opened
    when they first sign.
    """
    keys = Keyring(settings, secret=secret or env_secret(settings, passphrase, os.environ))
    if not settings.people:
        keys.default()
    return keys


def signers_of(
    keys: Keyring, doc: Any, *, approval: bool
) -> tuple[SignatureSlot, SignatureSlot | None, Sealer]:
    """The signature `doc` gets at issue, the field left for the head's approval (or None),
    and the key of the person printed under the signature, from `keys`.

    Issue 17: the printed signer's key must name them (`Keyring.for_name`), and with
    `approval` the head's key must not be the verifier's. Raises `SignerRefused` naming the
    field ("head.name"), which `Issuer` does before any number is taken. A digitised copy is
    signed with the ``[signing]`` key.
    """
    if isinstance(doc, PaperCopy):
        return SignatureSlot("Signature1", "Người số hóa / Digitised by"), None, keys.default()
    cert = doc.result if isinstance(doc, FailureNotice) else doc
    slot, reserve = signature_slots(cert, approval=approval)
    if isinstance(cert, CalibrationCertificate):
        role, field = Role.SIGNATORY, "signatory.name"
    elif reserve is None:
        role, field = Role.HEAD, "head.name"
    else:
        role, field = Role.VERIFIER, "verifier.name"
    assert slot.name_on_page is not None
    sealer = keys.for_name(slot.name_on_page, role, field=field, ref=doc.ref)
    if reserve is not None and reserve.name_on_page is not None:
        keys.check_distinct(sealer, reserve.name_on_page, field="head.name", ref=doc.ref)
    return slot, reserve, sealer


def load_token_key(settings: Settings) -> TokenKey:
    """The lab's QR token key from the profile."""
    if settings.token_key is None:
        raise ConfigError("no token key configured", hint="set [token] key in the lab profile")
    return TokenKey.load(settings.token_key)


def trial_render(
    renderer: Renderer,
    cert: Cert,
    settings: Settings,
    *,
    label: str,
    today: date,
    accredited: bool = True,
) -> bytes:
    """Render `cert` with `renderer` as it would be issued today, with a stand-in number.

    The number is the series of `cert` followed by `label` ("HC-CHECK"), the QR code points
    nowhere; nothing is numbered, signed or written. Raises `TemplateError` when the template
    cannot render `cert`. `Issuer.check` and a batch's dry run use it.
    """
    # Only told when it is not accredited: a renderer need not take the option otherwise.
    options = {} if accredited else {"accredited": False}
    return renderer.render_pdf(
        cert,  # type: ignore[arg-type]  # any model with .kind; copies use copy.rml.j2
        number=f"{settings.series_for(cert.kind)}-{label}",
        issued=today,
        qr_url=verification_url(settings.token_url_base, label.upper()),
        settings=settings,
        **options,
    )


_PROFILE_TESTING_SCOPE = "[lab] testing_scope"
_REGISTER_TESTING_SCOPE = "the register's testing scope"


def testing_scope_marked(
    cert: TestingReport,
    lines: tuple[TestingScopeLine, ...],
    *,
    source: str = _PROFILE_TESTING_SCOPE,
) -> TestingReport:
    """`cert` with each row outside every testing scope line marked ``accredited: false``
    (issue 22: "chỉ tiêu chưa được công nhận / parameter not accredited"); unchanged without
    lines or rows. A row typed ``accredited: true`` that no line covers is refused
    (`IssueRefused`, naming the row and `source`, where the lines came from)."""
    if not lines or not cert.tests:
        return cert
    rows = []
    for i, row in enumerate(cert.tests):
        read = row.read
        method = row.method or cert.method
        inside = any(line.covers(row.parameter, method, row.unit, read.value) for line in lines)
        if not inside and row.accredited:
            raise IssueRefused(
                f"ref '{cert.ref}': tests[{i}] ({row.parameter}, {method}) is typed accredited, "
                f"but no line of {source} covers it",
                hint="leave 'accredited' out (the row is then marked not accredited), or add "
                + (
                    "the line with 'certissuer registry add testing-scope parameter=… method=…'"
                    if source == _REGISTER_TESTING_SCOPE
                    else f"the parameter and method to {source}"
                ),
            )
        rows.append(
            row
            if inside or row.accredited is False
            else row.model_copy(update={"accredited": False})
        )
    return cert.model_copy(update={"tests": rows})


def _profile_cmc_lines(settings: Settings) -> list[CmcLine]:
    """The [lab] accredited_scope lines of `settings` that state a CMC; `ConfigError` for a
    CMC whose unit is not the line's unit or a multiple of it."""
    lines = []
    for i, line in enumerate(settings.accredited_scope()):
        if line.cmc is None:
            continue
        label = f"{line.item + ': ' if line.item else ''}{line.lower}..{line.upper} {line.unit}"
        try:
            parse_cmc(f"{line.cmc} {line.cmc_unit}", line.unit)
        except ValueError as exc:
            raise ConfigError(
                f"[lab] accredited_scope[{i}]: '{label}': {exc}",
                hint="write the CMC in the range's unit or a multiple of it, e.g. \"0..220 g, "
                'CMC 0.1 mg"',
            ) from None
        lines.append(CmcLine(label, line.covers, line.cmc, line.cmc_unit))
    return lines


class Issuer:
    """Issues certificates for one lab into one output folder and one ledger."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledger: Ledger,
        sealer: Sealer | None = None,
        keys: Keyring | None = None,
        token_key: TokenKey,
        out_dir: Path,
        renderer: Renderer | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.keys = keys or Keyring(settings, sealer=sealer)
        """Each signing person's key: the printed signer's signs each certificate."""
        self.sealer = sealer
        """The ``[signing]`` key when it was given or opened at the start (without
        ``[[people]]``); it signs for the person its certificate names."""
        self.token_key = token_key
        self.out_dir = out_dir
        self.renderer = renderer or Renderer(settings.render_template_dir)
        self.dcc: DccWriter | None = DccWriter.from_settings(settings)
        """Builds the DCC XML embedded in each PDF before signing (issue 9); None: no DCC."""
        self.register = Register(
            ledger.engine,
            lab_code=settings.lab_code,
            instrument_types=settings.registry_instrument_types,
            outside_scope=settings.registry_outside_scope,
        )
        """The measurement register (issue 8): checked before each number is reserved."""
        self._scope_noted = False
        self.mpe_rules = load_mpe_rules()
        """The procedures' MPE per instrument type and class, checked without any register."""
        self._profile_cmc = _profile_cmc_lines(settings)
        """The profile's accredited scope lines that state a CMC."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        passphrase: bytes | None,
        out_dir: Path,
        ledger: Ledger | None = None,
        secret: SecretSource | None = None,
    ) -> Issuer:
        """Open the ledger, keys and templates the profile names.

        `passphrase` is the ``[signing]`` key's passphrase or PIN, `secret` gives the
        ``[[people]]`` keys' (`load_keyring`). The ledger is opened for the profile's lab
        (`Ledger.bind`): another lab's ledger is refused with `LedgerError`.
        """
        keys = load_keyring(settings, passphrase, secret=secret)
        token_key = load_token_key(settings)
        sealer = None if settings.people else keys.default()  # opened by load_keyring
        try:
            # Issue 20: a key the key register retired signs nothing new (it would not verify).
            check_in_use(settings, token_key, sealer.certificate if sealer else None)
        except ConfigError:
            keys.close()
            raise
        return cls(
            settings,
            ledger=ledger
            or Ledger.open(
                settings.ledger_url, lab_code=settings.lab_code, profile=settings.source
            ),
            sealer=sealer,
            keys=keys,
            token_key=token_key,
            out_dir=out_dir,
        )

    def issue(self, cert: Cert, *, now: datetime | None = None) -> Issued:
        """Issue `cert`: reserve its number, render, sign, write the PDF, complete the entry.

        Issuing the same record (same ``ref``) again returns the existing certificate
        (`Issued.reused`); the same ref with different data raises `LedgerError`. A
        verification certificate whose checks fail is recorded as failed and refused
        (`IssueRefused`). Any failure while rendering, signing or writing leaves no file and
        gives the number back (or, if later numbers were taken meanwhile, leaves a pending
        entry that `complete_pending` finishes).
        """
        now = now or datetime.now(UTC)
        doc, digest, data_json, existing, type_code = self._prepare(cert, now, issuing=True)
        if existing is not None:
            if existing.is_pending:
                if not self.ledger.claim_entry(existing, this_claimant()):
                    raise LedgerError(
                        f"ref '{doc.ref}' ({existing.number}) is being issued by another "
                        f"process ({existing.claim})"
                    )
                return self._noticed(doc, self._finish(existing, doc, now), now)
            assert existing.pdf_sha256 is not None and existing.pdf_path is not None
            return self._noticed(
                doc,
                Issued(
                    existing.number,
                    existing.kind,
                    Path(existing.pdf_path),
                    existing.pdf_sha256,
                    verification_url(self.settings.token_url_base, existing.token),
                    reused=True,
                    remark=self._remark(existing, now),
                ),
                now,
            )

        issue_date = now.astimezone(VIETNAM_TZ).date()
        series = self.settings.series_for(doc.kind)

        def build(number: str, seq: int) -> CertificateEntry:
            entry = self._entry(doc, number, seq, series, issue_date, now, digest, data_json)
            # Absolute: the ledger says where the PDF is whatever folder a command runs in.
            entry.pdf_path = str((self.out_dir / pdf_filename(number)).absolute())
            return entry

        # Issue 17: the person printed over the signature has a key that names them.
        self._check_signers(doc)
        # Issue 8: the register's checks (standards, verifier card, signatory, scope, stamp,
        # valid-until) before a number is taken; on once the register holds this lab.
        clearance = None
        if not isinstance(doc, PaperCopy | FailureNotice) and self.register.enabled():
            clearance = self.register.clear(doc, now=now)
        # Issue 16: the stamp is claimed with the number, once per lab (a notice has none).
        stamp = self._check_stamp(doc)
        entry = self.ledger.reserve_with(
            self.settings.lab_code,
            series,
            issue_date.year,
            build,
            claim=this_claimant(),
            stamp=stamp,
            replaces=self._replaced(doc),
        )
        issued = self._finish(entry, doc, now)
        if clearance is None and isinstance(doc, VerificationCertificate | CalibrationCertificate):
            # Issue 16: the register fills itself, lab row or not: the owner and the instrument
            # (its type as the cycle-table checks found it, latest certificate, valid-until),
            # so recall lists what this lab verified from its first certificate on; and the
            # reference standards a calibration used, linked to the certificate.
            clearance = Clearance(ref=doc.ref, accredited=True, type_code=type_code)
        if clearance is not None and not isinstance(doc, FailureNotice):
            self.register.record(clearance, doc, issued.number)
        return self._noticed(doc, issued, now)

    def check(self, cert: Cert, *, now: datetime | None = None) -> None:
        """Make every check `issue` makes before it takes a number, and take none.

        `cert` is checked as `issue` would check it at `now`: its valid-until date, its
        verification results (a failed instrument gets its notice of failure checked; it is
        recorded as failed only when issued), its ``ref`` against the ledger (`LedgerError` for
        the same ref with other data), the register's rules (`RegisterRefused`), its stamp
        number against the ledger (`IssueRefused`: a stamp is used once per lab), and its
        template, rendered once with a stand-in number (`TemplateError`). A record the ledger
        already holds passes: issuing it again returns the certificate it has. This is how a
        run issues nothing when one record of it is bad. Nothing is written.
        """
        now = now or datetime.now(UTC)
        doc, _, _, existing, _ = self._prepare(cert, now, issuing=False)
        if existing is not None:
            return
        self._check_signers(doc)  # issue 17: a key naming the printed signer
        if not isinstance(doc, PaperCopy | FailureNotice) and self.register.enabled():
            self.register.check(doc)
        self._check_stamp(doc)
        in_scope = self._in_scope(doc)
        trial_render(
            self.renderer,
            doc,  # type: ignore[arg-type]  # a notice renders from failure.rml.j2
            self._printed_settings(in_scope),
            label="CHECK",
            today=now.astimezone(VIETNAM_TZ).date(),
            accredited=in_scope is not False,
        )

    def complete_pending(self, *, now: datetime | None = None) -> list[Issued]:
        """Finish the pending entries of this lab that no live process is working on.

        A crash (or ``kill -9``) between reserving a number and recording the PDF leaves a
        pending entry that holds the number, the data and the intended PDF path; this renders,
        signs and writes it again, in place. Left-over temporary files of dead processes in
        the output folder are removed. Run at the start of every issuing run and by
        ``certissuer ledger repair``.
        """
        _remove_stale_temporaries(self.out_dir)
        done = []
        for entry in self.ledger.claim_pending(this_claimant(), lab_code=self.settings.lab_code):
            data = json.loads(entry.data_json)
            cert: _Doc = (
                PaperCopy.model_validate(data)
                if entry.kind == "copy"
                else parse_certificate(data, stored=True)
            )
            if entry.kind == "failure":
                assert isinstance(cert, VerificationCertificate)
                cert = self._notice(cert)
            if entry.pdf_path:
                _remove_stale_temporaries(Path(entry.pdf_path).parent)
            done.append(self._finish(entry, cert, now or datetime.now(UTC)))
        return done

    def amend(self, number: str, cert: Cert, *, reason: str, now: datetime | None = None) -> Issued:
        """Issue `cert` as the amended certificate replacing `number` (ISO/IEC 17025 §7.8.8).

        The new certificate gets a new number and states which certificate it replaces and
        why; the old one gets a ``superseded`` event naming the new number. Rerunning the same
        amendment returns the same replacement. Raises `LedgerError` when `number` is unknown,
        pending, revoked, already superseded by another certificate, or of another kind.
        """
        now = now or datetime.now(UTC)
        if not reason.strip():
            raise LedgerError("an amendment needs a reason", hint="pass --reason")
        old = self.ledger.get(number)
        if old is None or old.is_pending:
            raise LedgerError(f"certificate {number} is not an issued certificate")
        if old.kind != cert.kind:
            raise LedgerError(f"certificate {number} is a {old.kind} certificate, not {cert.kind}")
        ref = cert.ref if cert.ref != old.ref else f"{old.ref}/amends/{number}"
        amended = cert.model_copy(
            update={"ref": ref, "replaces": Replacement(number=number, reason=reason.strip())}
        )
        issued = self.issue(amended, now=now)
        self.ledger.supersede(
            number, by=issued.number, reason=reason.strip(), at=now, ledger_key=self.token_key
        )
        return issued

    def checks_run(self) -> tuple[list[str], dict[str, str]]:
        """The checks every issue of this issuer makes, and those it skips for want of data,
        each with why (issue 16): the basic checks always run; the register's run when the
        lab's register holds their rows; the CMC when the register's or the profile's scope
        lines state one."""
        ran = list(BASIC_CHECKS)
        no_data: dict[str, str] = {}
        missing = self.register.missing()
        for name, has in self.register.coverage().items():
            if name == "CMC" and not has and self._profile_cmc and not self.register.has_scope():
                ran.append(f"{name} ([lab] accredited_scope)")
            elif has:
                ran.append(name)
            elif name == "CMC" and self._profile_cmc:
                no_data[name] = (
                    f"{missing[name]} (the register's scope lines take the place of the "
                    "profile's [lab] accredited_scope)"
                )
            elif name == "CMC":
                no_data[name] = (
                    f"{missing[name]}; the profile's [lab] accredited_scope states no CMC"
                )
            else:
                no_data[name] = missing[name]
        return ran, no_data

    def checkpoint(self, *, now: datetime | None = None) -> Checkpoint:
        """Sign a checkpoint of the ledger's log with the lab's token key."""
        return self.ledger.checkpoint(
            self.token_key, lab_code=self.settings.lab_code, at=now or datetime.now(UTC)
        )

    # -- internals -------------------------------------------------------------------------

    def _prepare(self, cert: Cert, now: datetime, *, issuing: bool) -> _Prepared:
        """The checks before a number is taken: `cert` completed (a failed verification: its
        notice of failure), its canonical JSON and digest, the ledger's entry for its ref
        (None: a new record) and the instrument type the checks found. Only when `issuing` is
        a failed verification recorded (`Issuer.check` writes nothing)."""
        type_code = None
        if not isinstance(cert, PaperCopy):
            # Issue 16: the checks the record and the cycle table allow, register or not
            # (dates, standards' due dates, type and valid-until), before any number is taken.
            today = now.astimezone(VIETNAM_TZ).date()
            basics = self.register.basic_check(cert, today=today)
            if isinstance(cert, VerificationCertificate):
                if cert.valid_until is None:
                    # Computed, not typed: the end of the legal verification cycle (issue 8).
                    cert = cert.model_copy(update={"valid_until": basics.valid_until})
                self._check_mpe(cert, basics.type_code)
                type_code = basics.type_code
            else:
                # ILAC-P14: no result inside an accredited scope line claims an uncertainty
                # below the line's CMC (the register's lines, else the profile's).
                refuse(cmc_problems(cert, self._cmc_lines(cert)))
                if isinstance(cert, TestingReport):
                    lines, source = self._testing_scope()
                    cert = testing_scope_marked(cert, lines, source=source)
        data_json = canonical_json(cert).decode()
        digest = hashlib.sha256(data_json.encode()).hexdigest()
        doc: _Doc = cert
        if isinstance(cert, VerificationCertificate) and not cert.passes:
            self._refuse_failed(cert, digest, data_json, now, record=issuing)
            doc = self._notice(cert)  # issue 16: a failed instrument gets a notice of failure
        existing = self.ledger.by_ref(self.settings.lab_code, cert.ref)
        if existing is not None and existing.data_digest != digest:
            raise LedgerError(
                f"ref '{cert.ref}' was already issued as {existing.number} with other data",
                hint="use a new ref, or amend the certificate",
            )
        return _Prepared(doc, digest, data_json, existing, type_code)

    def _check_stamp(self, cert: _Doc) -> tuple[str, int] | None:
        """Refuse (`IssueRefused`) a stamp number another certificate of this lab holds.

        Issue 16: a stamp is used once per lab, with or without a register. This refuses
        before a number is taken; the ledger's key on the stamp (`Ledger.reserve_with`) guards
        the race between processes. Returns the stamp as (series, number), or None.
        """
        stamp = self.stamp_of(cert)
        if stamp is not None:
            holder = self.ledger.stamp_holder(self.settings.lab_code, stamp)
            if holder is not None and holder != self._replaced(cert):
                raise IssueRefused(
                    f"ref '{cert.ref}': stamp {stamp[0]} {stamp[1]} is already on certificate "
                    f"{holder}",
                    hint="each stamp number is used once per lab: put the next stamp from stock "
                    "on the instrument and give its number",
                )
        return stamp

    @staticmethod
    def _replaced(cert: _Doc) -> str | None:
        """The number an amended verification certificate replaces (it keeps that stamp)."""
        if isinstance(cert, VerificationCertificate) and cert.replaces is not None:
            return cert.replaces.number
        return None

    @staticmethod
    def stamp_of(cert: _Doc) -> tuple[str, int] | None:
        """The verification stamp of `cert` as (series, number), or None when it has none.

        Raises `IssueRefused` when the stamp has no number to tell it apart.
        """
        if not isinstance(cert, VerificationCertificate) or not cert.stamp_number.strip():
            return None
        try:
            return parse_stamp(cert.stamp_number)
        except ValueError as exc:
            raise IssueRefused(
                f"ref '{cert.ref}': stamp_number: {exc}",
                hint="give the stamp's series and number as printed on it",
            ) from None

    def _entry(
        self,
        cert: _Doc,
        number: str,
        seq: int,
        series: str,
        issue_date: date,
        now: datetime,
        digest: str,
        data_json: str,
    ) -> CertificateEntry:
        token = make_token(self.token_key, number=number, issued=issue_date, digest=digest)
        if isinstance(cert, PaperCopy):
            return CertificateEntry(
                number=number, lab_code=self.settings.lab_code, series=series,
                year=issue_date.year, seq=seq, kind=cert.kind, ref=cert.ref,
                instrument_name=cert.instrument, instrument_model=cert.model,
                instrument_serial=cert.serial, customer_name=cert.owner,
                work_date=cert.paper_issue_date, issue_date=issue_date,
                valid_until=cert.valid_until, issued_at=now, data_digest=digest,
                data_json=data_json, token=token, paper_number=cert.paper_number,
            )  # fmt: skip
        valid_until: date | None
        if isinstance(cert, FailureNotice):  # a notice is valid as a record, it has no term
            instrument, customer = cert.result.instrument, cert.result.owner.name
            work_date, valid_until = cert.result.verification_date, None
        elif isinstance(cert, VerificationCertificate):
            instrument, customer = cert.instrument, cert.owner.name
            work_date, valid_until = cert.verification_date, cert.valid_until
        else:
            instrument, customer = cert.item, cert.customer.name
            work_date, valid_until = cert.calibrated, cert.valid_until
        return CertificateEntry(
            number=number,
            lab_code=self.settings.lab_code,
            series=series,
            year=issue_date.year,
            seq=seq,
            kind=str(cert.kind),
            ref=cert.ref,
            instrument_name=instrument.name,
            instrument_model=instrument.model,
            instrument_serial=instrument.serial,
            customer_name=customer,
            work_date=work_date,
            issue_date=issue_date,
            valid_until=valid_until,
            issued_at=now,
            data_digest=digest,
            data_json=data_json,
            token=token,
        )

    def _finish(self, entry: CertificateEntry, cert: _Doc, now: datetime) -> Issued:
        url = verification_url(self.settings.token_url_base, entry.token)
        path = Path(entry.pdf_path) if entry.pdf_path else self.out_dir / pdf_filename(entry.number)
        written = False
        in_scope = self._in_scope(cert)  # once: it decides the mark and the printed number
        try:
            pdf = self.renderer.render_pdf(
                cert,  # type: ignore[arg-type]  # any model with .kind; copies use copy.rml.j2
                number=entry.number,
                issued=entry.issue_date,
                qr_url=url,
                settings=self._printed_settings(in_scope),
                **({} if in_scope is not False else {"accredited": False}),
            )
            scans: list[tuple[str, str, int]] = []
            slot, reserve, sealer = self._signers(cert)
            if isinstance(cert, PaperCopy):
                # An electronic copy: the first page, then the scans at their own resolution.
                pdf = append_scans(pdf, cert, number=entry.number)
                scans = [(s.file_name, s.sha256, s.pages) for s in cert.scans]
            elif not isinstance(cert, FailureNotice) and self.dcc is not None:
                # before signing, so the signature covers the DCC
                pdf = self.dcc.embed(
                    pdf, cert, number=entry.number, accredited=self._in_scope(cert) is True
                )
            signed = sealer.sign(
                pdf,
                info={INFO_QR_KEY: url},
                reason=f"{entry.number}",
                location=self.settings.lab_place,
                slot=slot,
                reserve=reserve,
            )
            sha = hashlib.sha256(signed).hexdigest()
            store = open_store(self.ledger, self.settings.ledger_pdf_store)
            store.put(entry.number, path, signed)
            written = True
            self.ledger.complete(
                entry.number,
                pdf_sha256=sha,
                pdf_path=str(path),
                signer=sealer.subject,
                at=now,
                scans=scans,
                ledger_key=self.token_key,  # the ledger's events are signed with the token key
                awaiting_approval=reserve is not None,  # the head's field is left empty
            )
        except BaseException:
            if written:
                store.discard(entry.number, path)  # no PDF is left without its ledger row
            released = self.ledger.release(entry.number)
            if not released:
                self.ledger.unclaim(entry.number, this_claimant())
            _logger.debug("issue of %s failed; number released: %s", entry.number, released)
            raise
        _logger.info("issued %s -> %s", entry.number, path)
        downgraded = sealer.downgraded
        level = "B-B" if downgraded else sealer.policy.level.value
        return Issued(entry.number, entry.kind, path, sha, url, level=level, tsa_failure=downgraded)

    def _signers(self, doc: _Doc) -> tuple[SignatureSlot, SignatureSlot | None, Sealer]:
        return signers_of(self.keys, doc, approval=self.settings.signing_approval)

    def _check_signers(self, doc: _Doc) -> None:
        """`signers_of` before a number or a stamp is taken. When it refuses the printed
        signer, the register (if it holds this lab) says first whether that person may sign
        at all: its refusal names the rule ("not an approved signatory")."""
        try:
            self._signers(doc)
        except SignerRefused:
            if not isinstance(doc, PaperCopy | FailureNotice) and self.register.enabled():
                self.register.check(doc)
            raise

    def _in_scope(self, doc: _Doc) -> bool | None:
        """Issue 16: is `cert` within the accredited scope? The register's scope decides when
        the register holds the lab's scope lines; otherwise the profile's [lab]
        accredited_scope lines (a calibration certificate's every result must fall inside one).
        None: no scope data, so no mark is printed (and no claim that the work is outside the
        scope).

        A testing report (issue 22) is never judged against these lines (they are calibration
        scope lines): its rows are judged against the testing scope (`_testing_scope`: the
        register's lines, else ``[lab] testing_scope``); without lines it gets None (no mark,
        and no claim either way)."""
        cert = doc.result if isinstance(doc, FailureNotice) else doc
        if isinstance(cert, PaperCopy) or not self.settings.lab_accreditation:
            return True
        if isinstance(cert, TestingReport):
            # Issue 22: judged row by row against the testing scope (`testing_scope_marked`);
            # the report keeps the mark while one row is accredited, its other rows marked.
            if not cert.tests or not self._testing_scope()[0]:
                _logger.debug("a testing report: no testing scope data, issued without the mark")
                return None
            return any(row.accredited is not False for row in cert.tests)
        if self.register.has_scope():
            return self.register.accredited(cert)
        if not isinstance(cert, CalibrationCertificate):
            return True  # verification certificates carry the designation, not the mark
        lines = self.settings.accredited_scope()
        if not lines:
            if not self._scope_noted:
                self._scope_noted = True
                _logger.warning(
                    "note: no accredited scope in the register or in [lab] accredited_scope: "
                    "calibration certificates are issued without the accreditation mark"
                )
            return None
        return all(
            any(
                line.covers(
                    cert.item.name, m.unit, m.nominal if m.nominal is not None else m.measured
                )
                for line in lines
            )
            for m in cert.results
        )

    def _testing_scope(self) -> tuple[tuple[TestingScopeLine, ...], str]:
        """The testing scope lines a testing report's rows are judged against, and where they
        come from (issue 22): the register's when it holds this lab's testing scope lines,
        else the profile's ``[lab] testing_scope`` lines (as the calibration scope: the
        register's decides when it has lines)."""
        lines = self.register.testing_scope_lines()
        if lines:
            return lines, _REGISTER_TESTING_SCOPE
        return self.settings.testing_scope(), _PROFILE_TESTING_SCOPE

    def _cmc_lines(self, cert: CalibrationCertificate) -> list[CmcLine]:
        """The accredited scope lines with a CMC that apply to `cert`: the register's when it
        holds the lab's scope, else the profile's [lab] accredited_scope lines. None for a
        testing report: those are calibration scope lines (see `_in_scope`)."""
        if isinstance(cert, TestingReport):
            return []
        if self.register.has_scope():
            return self.register.cmc_lines(cert)
        return self._profile_cmc

    def _printed_settings(self, in_scope: bool | None) -> Settings:
        # Work outside the accreditation scope, when the profile allows it, is printed
        # without the accreditation mark (issue 8; the renderer is told `accredited=False`);
        # without scope data (`in_scope` None) the profile is printed without its
        # accreditation number.
        if in_scope is None:
            return self.settings.replace(lab_accreditation="")
        return self.settings

    def _notice(self, cert: VerificationCertificate) -> FailureNotice:
        """The notice of failure for the failed `cert`, naming the instrument's earlier
        certificate in this ledger (same lab, serial and model)."""
        earlier = self.ledger.earlier_verification(
            self.settings.lab_code,
            serial=cert.instrument.serial,
            model=cert.instrument.model,
            before_ref=cert.ref,
        )
        return FailureNotice(cert, earlier.number if earlier is not None else None)

    def _remark(self, entry: CertificateEntry, now: datetime) -> str:
        """What a person must know about the already issued `entry`: that it is no longer
        valid (and why), and that its PDF is missing from the archive."""
        status, event = self.ledger.status(entry, today=local_date(now))
        notes = []
        if status not in (Status.VALID, Status.AWAITING_APPROVAL):
            why = status.value.replace("_", " ")
            if event is not None and event.related_number:
                why += f" by {event.related_number}"
            if event is not None and event.reason:
                why += f": {event.reason}"
            notes.append(why)
        stored_as_file = self.settings.ledger_pdf_store == "files"
        if stored_as_file and entry.pdf_path and not Path(entry.pdf_path).is_file():
            notes.append(f"its PDF is missing from the archive ({entry.pdf_path})")
        return "; ".join(notes)

    def _noticed(self, doc: _Doc, issued: Issued, now: datetime) -> Issued:
        """`issued`, or for a notice of failure: mark the earlier certificate no longer valid
        (a signed event) and raise `NoticeIssued`, so the record counts as refused."""
        if not isinstance(doc, FailureNotice):
            return issued
        if doc.earlier is not None:
            self.ledger.fail_reverification(
                doc.earlier,
                notice=issued.number,
                reason=f"{FAILED_REVERIFICATION_VI} / {FAILED_REVERIFICATION_EN} "
                f"(notice of failure {issued.number})",
                at=now,
                ledger_key=self.token_key,
            )
        bad = [f"check {i} ({c.finding})" for i, c in doc.failing]
        earlier = f"; certificate {doc.earlier} is no longer valid" if doc.earlier else ""
        raise NoticeIssued(
            f"ref '{doc.ref}': the instrument failed verification ({'; '.join(bad)}); the "
            f"record is rejected and gets no certificate: notice of failure {issued.number} "
            f"was issued instead -> {issued.path}{earlier}",
            issued=issued,
        )

    def _check_mpe(self, cert: VerificationCertificate, code: str | None) -> None:
        # Issue 16: a typed MPE must be the one the procedure gives for the type (`code`, as
        # the cycle table checks found it) and the accuracy class.
        problems = contradictions(cert, code, self.mpe_rules)
        if problems:
            raise IssueRefused(
                "\n".join(f"ref '{cert.ref}': {p}" for p in problems),
                hint=f"type the MPE the procedure gives (table: {self.mpe_rules.where})",
            )

    def _refuse_failed(
        self,
        cert: VerificationCertificate,
        digest: str,
        data_json: str,
        now: datetime,
        *,
        record: bool,
    ) -> None:
        if record:
            self.ledger.record_failed(
                FailedVerification(
                    lab_code=self.settings.lab_code,
                    ref=cert.ref,
                    recorded_at=now,
                    instrument_serial=cert.instrument.serial,
                    data_digest=digest,
                    data_json=data_json,
                )
            )
        bad = [f"check {i} ({c.finding})" for i, c in enumerate(cert.checks, 1) if not c.passes]
        if cert.verdict is Verdict.INDETERMINATE:  # ILAC-G8 guarded acceptance (issue 16)
            raise IssueRefused(
                f"ref '{cert.ref}': the verification is indeterminate ({'; '.join(bad)}): an "
                "error lies in the guard band (|error| within U of the MPE), so the instrument "
                "is not shown to pass and gets no certificate. Its results were recorded.",
                hint="repeat the check with a smaller uncertainty, or adjust the instrument",
            )
        # A failed instrument: `_prepare` turns the record into its notice of failure.
