"""The JSON API: its models and routes, described by ``/api/v1/openapi.json``.

* ``GET /api/v1/verdict/{token}``: the verdict for the token of a QR code.
* ``GET /api/v1/lookup?number=…&serial=…``: the ledger's verdict when both match.
* ``POST /api/v1/verify``: the verdict for an uploaded PDF.
* ``GET /api/v1/lab``: who answers.
* ``GET /api/v1/checkpoint``, ``GET /api/v1/consistency?from=N``: the ledger log's newest
  signed checkpoint and the proof that an older one is a prefix of it.

>>> add_api_routes(app, site)  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from pydantic import BaseModel, Field

from certissuer.errors import LedgerError
from certissuer.ledger import Checkpoint
from certissuer.verify import Report, Verdict
from certissuer.web.middleware import Problem, client_key
from certissuer.web.site import Site, lookup_fields, read_pdf_upload
from certissuer.web.views import (
    LEDGER_VERDICTS,
    CertificateDetails,
    ResultRow,
    TestRow,
    headline,
)

__all__ = [
    "CHECKPOINT_RESPONSES",
    "PROBLEM_RESPONSES",
    "UPLOAD_RESPONSES",
    "CertificateOut",
    "CheckpointOut",
    "ConsistencyOut",
    "LabOut",
    "LabReportOut",
    "ProblemOut",
    "ResultOut",
    "VerdictOut",
    "add_api_routes",
    "verdict_out",
]

# -- JSON API models ------------------------------------------------------------------------


class ResultOut(BaseModel):
    """One calibration result point, as printed."""

    nominal: str
    measured: str
    error: str
    uncertainty: str = Field(description="Expanded uncertainty U")
    coverage_factor: str = Field(description="Coverage factor k")
    unit: str


class TestRowOut(BaseModel):
    """One row of a testing report (issue 22), as printed."""

    __test__ = False

    parameter: str
    method: str
    result: str
    uncertainty: str = Field(description="Expanded uncertainty U (k = …); empty when none")
    unit: str
    requirement: str
    conformity_vi: str
    conformity_en: str
    accredited: bool = Field(description="False: parameter not accredited")


class CertificateOut(BaseModel):
    """The certificate's fields (only for a genuine certificate found in the ledger)."""

    number: str
    kind: str = Field(description="verification or calibration")
    instrument: str
    model: str
    serial: str
    manufacturer: str
    owner: str = Field(description="Owner / user (verification) or customer (calibration)")
    owner_address: str
    owner_hidden: bool = Field(
        default=False,
        description="The calibration customer's name and address are withheld by the lab "
        "(owner and owner_address are then empty)",
    )
    place: str = Field(description="Place of use (verification) or of calibration")
    stamp_number: str
    method: str
    mode: str
    work_date: date = Field(description="Date of verification or calibration")
    issue_date: date
    valid_until: date | None
    conclusion_vi: str
    conclusion_en: str
    pdf_sha256: str = Field(description="SHA-256 (hex) of the signed PDF the lab issued")
    results: list[ResultOut]
    tests: list[TestRowOut] = Field(
        default_factory=list, description="A testing report's rows (parameter, requirement)"
    )


class LabOut(BaseModel):
    """Who answers: compare the domain and the key fingerprint with what the lab publishes."""

    name_vi: str
    name_en: str
    domain: str
    token_key_fingerprints: list[str] = Field(
        description="SHA-256 (hex) of each QR token public key (DER SubjectPublicKeyInfo)"
    )


class LabReportOut(BaseModel):
    """A report of the lab (annual, activity) as the ledger's signed record says: not a
    certificate."""

    kind: str = Field(description="annual or activity")
    period: str = Field(description="The days reported, ISO 8601 interval (start/end)")
    title: str
    issued_at: datetime = Field(description="When it was signed and recorded")
    signer: str
    checkpoint: str = Field(description="The ledger checkpoint it counts: '<tree size> <root>'")


class VerdictOut(BaseModel):
    """The verdict for a QR token or an uploaded PDF."""

    verdict: Verdict
    ok: bool = Field(description="True only for a genuine, unaltered, current certificate")
    label_vi: str = Field(description="The verdict in Vietnamese, with reason or number")
    label_en: str = Field(description="The verdict in English, with reason or number")
    reasons: list[str]
    number: str | None = Field(description="The certificate number, when it is known genuine")
    pdf_sha256: str | None = Field(
        description="SHA-256 of the uploaded file, or of the registered PDF for a token"
    )
    signer: str | None
    signed_at: datetime | None
    superseded_by: str | None
    revocation_reason: str | None
    certificate: CertificateOut | None
    report: LabReportOut | None = Field(
        default=None,
        description="For a genuine report of the lab (verdict genuine_report): what it is",
    )


class CheckpointOut(BaseModel):
    """The lab's newest signed checkpoint of its ledger's log: keep it to detect a rollback.

    ``certissuer ledger audit --witness URL_OR_FILE`` checks that the log still extends it.
    The signature covers ``certissuer-checkpoint/v1``, lab code, tree size, root (hex) and time
    (ISO 8601, microseconds), one per line, each followed by a newline.
    """

    format: str = Field(description="Always certissuer-checkpoint/v1")
    lab_code: str
    tree_size: int = Field(description="How many leaves (events) the checkpoint vouches for")
    root_hash: str = Field(description="RFC 6962 Merkle tree hash of those leaves (hex)")
    at: str = Field(description="When the lab signed it (ISO 8601, UTC)")
    kid: str = Field(description="Key id of the lab's token key that signed it (hex)")
    signature: str = Field(description="Ed25519 or ECDSA P-256 (raw r||s) signature (hex)")


class ConsistencyOut(BaseModel):
    """An RFC 6962 / 9162 consistency proof between an older tree size and the newest
    checkpoint."""

    first: int = Field(description="The older tree size (the from= parameter)")
    second: int = Field(description="The newest checkpoint's tree size")
    first_root: str = Field(description="Root of the first `first` leaves, as stored now (hex)")
    second_root: str = Field(
        description="Root of the stored leaves at the newest checkpoint's size (hex); it is "
        "the checkpoint's root_hash unless the stored log was changed"
    )
    proof: list[str] = Field(description="The proof's nodes (hex), RFC 9162 §2.1.4")


class ProblemOut(BaseModel):
    """Why a request was refused."""

    detail: str
    detail_vi: str


def _lab_report_out(report: Report) -> LabReportOut | None:
    """What a genuine report of the lab is (issue 19); None for anything else."""
    if not report.genuine_report or report.report_issued_at is None:
        return None
    return LabReportOut(
        kind=report.report_kind or "",
        period=report.report_period or "",
        title=report.report_title or "",
        issued_at=report.report_issued_at,
        signer=report.report_signer or "",
        checkpoint=report.checkpoint or "",
    )


def verdict_out(report: Report, details: CertificateDetails | None) -> VerdictOut:
    """The API's answer for `report`; the certificate's fields only with `details`."""
    vi, en = headline(report)
    genuine = report.verdict in LEDGER_VERDICTS or report.verdict in (
        Verdict.NOT_IN_LEDGER,
        Verdict.LEDGER_NOT_CONSULTED,
        Verdict.FILE_LEDGER_NOT_CONSULTED,
    )
    return VerdictOut(
        verdict=report.verdict,
        ok=report.ok,
        label_vi=vi,
        label_en=en,
        reasons=list(report.reasons),
        number=report.number if genuine else None,
        pdf_sha256=report.pdf_sha256 or (details.pdf_sha256 if details else None),
        signer=report.signer,
        signed_at=report.signed_at,
        superseded_by=report.superseded_by,
        revocation_reason=report.revocation_reason,
        report=_lab_report_out(report),
        certificate=None
        if details is None
        else CertificateOut(
            number=details.number,
            kind=details.kind,
            instrument=details.instrument,
            model=details.model,
            serial=details.serial,
            manufacturer=details.manufacturer,
            owner=details.owner,
            owner_address=details.owner_address,
            owner_hidden=details.customer_hidden,
            place=details.place,
            stamp_number=details.stamp_number,
            method=details.method,
            mode=details.mode,
            work_date=details.work_date,
            issue_date=details.issue_date,
            valid_until=details.valid_until,
            conclusion_vi=details.conclusion_vi,
            conclusion_en=details.conclusion_en,
            pdf_sha256=details.pdf_sha256,
            results=[ResultOut(**_asdict(r)) for r in details.results],
            tests=[
                TestRowOut(**{n: getattr(t, n) for n in TestRow.__slots__}) for t in details.tests
            ],
        ),
    )


def _asdict(row: ResultRow) -> dict[str, str]:
    return {name: getattr(row, name) for name in ResultRow.__slots__}


def _newest_checkpoint(site: Site) -> Checkpoint:
    """The ledger's newest checkpoint; 404 when the lab has signed none yet."""
    cp = site.ledger.latest_checkpoint()
    if cp is None:
        raise Problem(404, "Sổ cấp chưa có điểm kiểm tra.", "The ledger has no checkpoint yet.")
    return cp


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ProblemOut,
        "description": "Too many requests, or uploads at once, from the address (see Retry-After)",
    },
    413: {"model": ProblemOut, "description": "Request body over the size limit"},
    503: {"model": ProblemOut, "description": "Busy or the ledger cannot be read"},
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    400: {"model": ProblemOut, "description": "Malformed multipart body"},
    408: {"model": ProblemOut, "description": "The body was not sent within the deadline"},
    415: {"model": ProblemOut, "description": "The file is not a PDF"},
    422: {"description": "No file given, or the file overran the time or memory limits"},
}
CHECKPOINT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    404: {"model": ProblemOut, "description": "No checkpoint yet"},
}


def add_api_routes(app: FastAPI, site: Site) -> None:
    """Add the JSON API's routes to `app`, answered by `site`."""

    # -- JSON API --------------------------------------------------------------------------

    @app.get(
        "/api/v1/verdict/{token}",
        response_model=VerdictOut,
        responses=PROBLEM_RESPONSES,
        tags=["verify"],
        summary="Verdict for a QR token",
    )
    def api_verdict(token: str) -> VerdictOut:
        """The verdict for the token of a QR code (the last part of ``<base>/V/<token>``).

        The token's signature is checked first, offline; a token that fails is ``altered``
        (NOT GENUINE) and the ledger is not asked.
        """
        answer = site.check_token(token)
        return verdict_out(answer.report, answer.details)

    @app.get(
        "/api/v1/lookup",
        response_model=VerdictOut,
        responses={
            **PROBLEM_RESPONSES,
            400: {"model": ProblemOut, "description": "A field is blank"},
        },
        tags=["verify"],
        summary="Verdict for a certificate number and the instrument's serial number",
    )
    def api_lookup(
        number: Annotated[
            str, Query(max_length=200, description="Certificate number, as printed or typed")
        ] = "",
        serial: Annotated[
            str, Query(max_length=200, description="The instrument's serial number, as printed")
        ] = "",
    ) -> VerdictOut:
        """For a certificate whose QR code cannot be read: the ledger's status of ``number``,
        only when ``serial`` is the instrument's serial number (case, spaces and dashes aside).

        An unknown number and a wrong serial number get the same ``not_in_ledger`` answer.
        Neither a token nor a file is checked. Each lookup costs as much of the rate limit
        as an upload.
        """
        answer = site.lookup(*lookup_fields(number, serial))
        return verdict_out(answer.report, answer.details)

    @app.post(
        "/api/v1/verify",
        response_model=VerdictOut,
        responses=UPLOAD_RESPONSES,
        tags=["verify"],
        summary="Verdict for an uploaded PDF",
    )
    async def api_verify(
        request: Request,
        file: Annotated[UploadFile, File(description="The signed certificate PDF")],
    ) -> VerdictOut:
        """Upload the certificate's PDF and get the full verdict of ``certissuer verify``."""
        data = await read_pdf_upload(file)
        return verdict_out(*await site.check_upload(data, client_key(request.scope)))

    @app.get(
        "/api/v1/lab",
        response_model=LabOut,
        responses=PROBLEM_RESPONSES,
        tags=["lab"],
        summary="Who answers",
    )
    def api_lab() -> LabOut:
        """The lab's name, the domain of its verification page and its token key fingerprints."""
        return LabOut(
            name_vi=site.lab.name_vi,
            name_en=site.lab.name_en,
            domain=site.lab.domain,
            token_key_fingerprints=list(site.lab.fingerprints),
        )

    @app.get(
        "/api/v1/checkpoint",
        response_model=CheckpointOut,
        responses=CHECKPOINT_RESPONSES,
        tags=["log"],
        summary="The newest signed checkpoint of the ledger's log",
    )
    def api_checkpoint() -> CheckpointOut:
        """The lab's newest signed checkpoint (tree size and root of its ledger's Merkle log).

        Save it (or let another server fetch it): ``certissuer ledger audit --witness`` then
        proves that the log was not rolled back behind it.
        """
        return CheckpointOut(**_newest_checkpoint(site).to_json())

    @app.get(
        "/api/v1/consistency",
        response_model=ConsistencyOut,
        responses={
            **CHECKPOINT_RESPONSES,
            400: {"model": ProblemOut, "description": "from is outside the log"},
            409: {"model": ProblemOut, "description": "The stored log is shorter than it"},
        },
        tags=["log"],
        summary="Consistency proof from a tree size to the newest checkpoint",
    )
    def api_consistency(
        first: Annotated[
            int, Query(alias="from", ge=1, description="The older tree size (a saved checkpoint)")
        ],
    ) -> ConsistencyOut:
        """Proof (RFC 6962) that the log of size ``from`` is a prefix of the newest checkpoint."""
        cp = _newest_checkpoint(site)
        if first > cp.tree_size:
            raise Problem(
                400,
                "Kích thước vượt quá điểm kiểm tra mới nhất.",
                f"from={first} is beyond the newest checkpoint (size {cp.tree_size}).",
            )
        try:
            proof = site.ledger.consistency(first, cp.tree_size)
        except LedgerError as exc:  # the stored log is shorter than its checkpoint
            raise Problem(
                409, "Sổ cấp không khớp điểm kiểm tra.", f"The log cannot prove it: {exc}"
            ) from None
        return ConsistencyOut(**proof)
