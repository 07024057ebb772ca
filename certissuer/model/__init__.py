"""The certificate and its parts, as typed and validated values; kinds; paper copies.

Two kinds of certificate exist, as Vietnamese labs issue them (Circular 24/2013/TT-BKHCN,
forms 18.GCNKĐ and 19.GCNHC; ISO/IEC 17025:2017 §7.8):

* `VerificationCertificate` (giấy chứng nhận kiểm định): legal metrology, pass only.
* `CalibrationCertificate` (giấy chứng nhận hiệu chuẩn): results with expanded uncertainty.
* `TestingReport` (phiếu kết quả thử nghiệm): one `TestResult` per test parameter, with its
  requirement and the conformity computed under the report's decision rule.

Measured values are `Decimal`, never float. `canonical_json` gives the one canonical form of the
data (sorted keys, Decimal as string) whose SHA-256 is the data digest recorded in the ledger and
carried by the QR token.

>>> from certissuer.model import parse_certificate, data_digest
>>> text = Path("samples/calibration.json").read_text()  # doctest: +SKIP
>>> cert = parse_certificate(json.loads(text, parse_float=Decimal))  # doctest: +SKIP
>>> len(data_digest(cert))  # doctest: +SKIP
64

The package is laid out by part: `kinds` (the kinds, once), `units` (legal units), `parts`
(parties, instruments, results, ...), `certificate` (the two certificates, parsing, digest),
`numbers` (values as printed), `mpe_rules` (the procedures' MPE per type and class) and
`paper` (electronic copies of paper certificates).
"""

from certissuer.model.certificate import (
    CONFORMITY_RULES,
    CONFORMITY_WORDS,
    TESTING_STATEMENT,
    AnyCertificate,
    CalibrationCertificate,
    Certificate,
    TestingReport,
    VerificationCertificate,
    canonical_json,
    certificate_json_schema,
    data_digest,
    field_path,
    parse_certificate,
)
from certissuer.model.kinds import KIND_NAMES, Kind, KindName
from certissuer.model.mpe_rules import MpeRule, MpeRules, contradictions, load_mpe_rules
from certissuer.model.numbers import (
    PrintedRow,
    format_decimal,
    format_extra,
    format_percent,
    format_result,
    format_row,
    round_uncertainty,
    t_factor,
)
from certissuer.model.paper import PaperCopy, ScanRef
from certissuer.model.parts import (
    PASS_CONCLUSION,
    RELATIVE_MPE_UNITS,
    CheckPoint,
    Conditions,
    Conformity,
    Date,
    ExtraColumn,
    Instrument,
    Measurement,
    MetrologicalRange,
    Party,
    ReferenceStandard,
    Replacement,
    Signatory,
    Verdict,
    VerificationMode,
)
from certissuer.model.testing import (
    DECISION_RULES,
    RowConformity,
    RowProblem,
    TestResult,
    read_result,
)
from certissuer.model.units import is_legal_unit

__all__ = [
    "CONFORMITY_RULES",
    "CONFORMITY_WORDS",
    "DECISION_RULES",
    "KIND_NAMES",
    "PASS_CONCLUSION",
    "RELATIVE_MPE_UNITS",
    "TESTING_STATEMENT",
    "AnyCertificate",
    "CalibrationCertificate",
    "Certificate",
    "CheckPoint",
    "Conditions",
    "Conformity",
    "Date",
    "ExtraColumn",
    "Instrument",
    "Kind",
    "KindName",
    "Measurement",
    "MetrologicalRange",
    "MpeRule",
    "MpeRules",
    "PaperCopy",
    "Party",
    "PrintedRow",
    "ReferenceStandard",
    "Replacement",
    "RowConformity",
    "RowProblem",
    "ScanRef",
    "Signatory",
    "TestResult",
    "TestingReport",
    "Verdict",
    "VerificationCertificate",
    "VerificationMode",
    "canonical_json",
    "certificate_json_schema",
    "contradictions",
    "data_digest",
    "field_path",
    "format_decimal",
    "format_extra",
    "format_percent",
    "format_result",
    "format_row",
    "is_legal_unit",
    "load_mpe_rules",
    "parse_certificate",
    "read_result",
    "round_uncertainty",
    "t_factor",
]
