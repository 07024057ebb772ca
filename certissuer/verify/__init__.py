"""Verification: one verdict for a certificate from its PDF or its QR URL.

>>> ledger = Ledger.open(settings.ledger_url)  # doctest: +SKIP
>>> verifier = Verifier.from_settings(settings, ledger=ledger)  # doctest: +SKIP
>>> report = verifier.verify_pdf(Path("out/HC-2026-000001.pdf").read_bytes())  # doctest: +SKIP
>>> report.verdict  # doctest: +SKIP
<Verdict.VALID: 'valid'>

The package reads, never writes: it imports neither rendering nor signing nor issuing.

* `verdict`: `Verdict`, its wording (`VERDICT_LABELS`) and the `Report` that explains it.
* `_info`: what a report says about one signature (`SignatureInfo`) and its wording.
* `verifier`: `Verifier`, the order of the checks and the ledger's say; trust roots and CRLs.
* `_strict`: strict document reading (one document for the validator and every viewer).
* `_pades`: every signature and document timestamp, judged.
* `_standing`: the ledger's say: the entry, its recomputed data, its signed events.
* `_bounded`: a check in a child process under a time and a memory limit (the CLI's).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certissuer.verify._bounded import verify_pdf_bounded
    from certissuer.verify._info import SignatureInfo, describe
    from certissuer.verify.verdict import NOT_CONSULTED, VERDICT_LABELS, Report, Verdict
    from certissuer.verify.verifier import Verifier, load_crls, load_trust_roots

# Resolved on first use (PEP 562): the command line reads a report and prints it without
# pyHanko, and its checking child imports pyHanko but not the ledger's SQL stack.
_WHERE = {
    "verify_pdf_bounded": "certissuer.verify._bounded",
    "SignatureInfo": "certissuer.verify._info",
    "describe": "certissuer.verify._info",
    "NOT_CONSULTED": "certissuer.verify.verdict",
    "VERDICT_LABELS": "certissuer.verify.verdict",
    "Report": "certissuer.verify.verdict",
    "Verdict": "certissuer.verify.verdict",
    "Verifier": "certissuer.verify.verifier",
    "load_crls": "certissuer.verify.verifier",
    "load_trust_roots": "certissuer.verify.verifier",
}

__all__ = [
    "NOT_CONSULTED",
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


def __getattr__(name: str) -> Any:
    """Import the module that defines `name` when it is first asked for."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
