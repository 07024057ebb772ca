"""The shared measurement register: labs and their scope, owners, instruments, instrument types
and their verification cycles, reference standards, personnel and verification stamps.

The register lives in the ledger database (same SQLite or PostgreSQL back end, migration 0004)
and does two jobs:

* **checks before issuing** (`Register.clear`, called by `Issuer.issue` before a number is
  reserved): reference standards within their calibration due date, the verifier's card valid
  and covering the instrument type, the signatory approved for the scope, the work inside the
  accreditation scope, the stamp in stock and unused, and the valid-until date equal to the one
  the cycle table gives. A refusal is a `RegisterRefused` naming what failed and how to fix it.
* **recall** (`Register.recall`): the instruments whose certificate expires within a window or
  has expired, grouped by owner, and the lab's reference standards falling due.

The register's checks are on for a lab once the register holds that lab (``certissuer
registry add lab``). The checks that need only the record and the cycle table (valid-until,
instrument type, dates, standards' due dates, year; `certissuer.registry.checks.check_basics`)
run for every lab, with or without a register.

>>> register = Register(ledger.engine, lab_code="DT01")  # doctest: +SKIP
>>> register.add("lab", {"code": "DT01", "name_vi": "Trung tâm …"})  # doctest: +SKIP
>>> register.import_file("instrument", Path("instruments.xlsx")).imported  # doctest: +SKIP
500
>>> [g.owner.name for g in register.recall(within_days=30, today=date(2026, 12, 1)).groups]
... # doctest: +SKIP
"""

from certissuer.registry.checks import RegisterChecks
from certissuer.registry.io import RegisterIO
from certissuer.registry.recall import RegisterRecall

__all__ = ["Register"]


class Register(RegisterChecks, RegisterIO, RegisterRecall):
    """The register of one lab, in the ledger database behind `engine`.

    `lab_code` is the lab's code ([lab] code); `instrument_types` a TOML cycle table that
    replaces the shipped one when the lab is added; `outside_scope` what to do with work
    outside the accreditation scope: ``refuse``, or ``unaccredited`` (issue without the
    accreditation mark, saying so on the certificate).
    """
