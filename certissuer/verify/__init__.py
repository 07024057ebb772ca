"""Verification: one verdict for a certificate from its PDF or its QR URL.

>>> ledger = Ledger.open(settings.ledger_url)  # doctest: +SKIP
>>> verifier = Verifier.from_settings(settings, ledger=ledger)  # doctest: +SKIP
>>> report = verifier.verify_pdf(Path("out/HC-2026-000001.pdf").read_bytes())  # doctest: +SKIP
>>> report.verdict  # doctest: +SKIP
<Verdict.VALID: 'valid'>

The package reads, never writes: it imports neither rendering nor signing nor issuing.

* `verdict`: `Verdict`, its wording (`VERDICT_LABELS`) and the `Report` that explains it.
* `verifier`: `Verifier`, the order of the checks and the ledger's say; trust roots and CRLs.
* `_strict`: strict document reading (one document for the validator and every viewer).
* `_pades`: every signature and document timestamp, judged.
* `_bounded`: a check in a child process under a time and a memory limit (the CLI's).
"""

from __future__ import annotations

from certissuer.verify._bounded import verify_pdf_bounded
from certissuer.verify._pades import SignatureInfo, describe
from certissuer.verify.verdict import VERDICT_LABELS, Report, Verdict
from certissuer.verify.verifier import Verifier, load_crls, load_trust_roots

__all__ = [
    "VERDICT_LABELS",
    "Report",
    "SignatureInfo",
    "Verdict",
    "Verifier",
    "describe",
    "load_crls",
    "load_trust_roots",
    "verify_pdf_bounded",
]
