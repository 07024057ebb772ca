"""certissuer: electronic verification and calibration certificates for measurement labs.

Results in (JSON, CSV, XLSX) → a bilingual PDF certificate rendered from an editable template →
PAdES-signed with the lab's key, with a QR code carrying a signed token → recorded in a ledger →
verifiable by anyone with the PDF or the QR code.

>>> import certissuer
>>> settings = certissuer.load_settings(Path("samples/certissuer.toml"))  # doctest: +SKIP
>>> issuer = certissuer.Issuer.from_settings(  # doctest: +SKIP
...     settings, passphrase=b"demo", out_dir=Path("out"))
>>> for record in certissuer.read_certificates(Path("samples/calibration.json")):  # doctest: +SKIP
...     print(issuer.issue(record.cert).number)
HC-2026-000001
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from certissuer._lazy import lazy_attributes
from certissuer.config import Settings, load_settings
from certissuer.errors import (
    CertissuerError,
    ConfigError,
    InputError,
    InputErrors,
    IssueRefused,
    LedgerError,
    SigningError,
    TemplateError,
    TokenError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from certissuer.intake import read_certificates
    from certissuer.issue import Issued, Issuer
    from certissuer.ledger import Ledger
    from certissuer.model import (
        CalibrationCertificate,
        Certificate,
        Kind,
        TestingReport,
        VerificationCertificate,
        parse_certificate,
    )
    from certissuer.verify import Report, Verdict, Verifier

__all__ = [
    "CalibrationCertificate",
    "Certificate",
    "CertissuerError",
    "ConfigError",
    "InputError",
    "InputErrors",
    "IssueRefused",
    "Issued",
    "Issuer",
    "Kind",
    "Ledger",
    "LedgerError",
    "Report",
    "Settings",
    "SigningError",
    "TemplateError",
    "TestingReport",
    "TokenError",
    "Verdict",
    "VerificationCertificate",
    "VerificationFailed",
    "Verifier",
    "load_settings",
    "parse_certificate",
    "read_certificates",
]

_LAZY = {
    "CalibrationCertificate": "certissuer.model",
    "Certificate": "certissuer.model",
    "Kind": "certissuer.model",
    "TestingReport": "certissuer.model",
    "VerificationCertificate": "certissuer.model",
    "parse_certificate": "certissuer.model",
    "Issued": "certissuer.issue",
    "Issuer": "certissuer.issue",
    "Ledger": "certissuer.ledger",
    "Report": "certissuer.verify",
    "Verdict": "certissuer.verify",
    "Verifier": "certissuer.verify",
    "read_certificates": "certissuer.intake",
}

# pydantic, SQLAlchemy, reportlab, z3c.rml and pyHanko take most of the start-up time: the CLI's
# --help needs none of them, so each is imported on first use.
__getattr__ = lazy_attributes(__name__, _LAZY)
