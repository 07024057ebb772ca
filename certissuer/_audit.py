"""Kept so that ``from certissuer._audit import …`` still works: the audit is
`certissuer.ledger.audit` now."""

from certissuer.ledger.audit import AuditReport, SessionSource, Witness, load_witness, run_audit

__all__ = ["AuditReport", "SessionSource", "Witness", "load_witness", "run_audit"]
