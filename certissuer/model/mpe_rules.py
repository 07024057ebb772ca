"""The MPE rules of the verification procedures: what a check point's MPE must be.

The table (``certissuer/data/mpe_rules.toml``, beside the cycle table) gives, per instrument type
(its ``code`` in ``instrument_types.toml``) and accuracy class, the maximum permissible error the
ĐLVN procedure defines: a rate of the check's reference value ("% of volume") or, for scales, a
number of scale intervals e by load. `contradictions` lists the check points of a verification
whose typed MPE is not the rule's, one line each.

>>> rules = load_mpe_rules()
>>> rules.for_type("cot-do-xang-dau", "0.5")[0].procedure
'ĐLVN 10:2017 (OIML R 117-1, accuracy class 0.5)'
"""

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from certissuer.errors import ConfigError
from certissuer.model.certificate import VerificationCertificate
from certissuer.model.parts import RELATIVE_MPE_UNITS, CheckPoint, VerificationMode

__all__ = ["MpeRule", "MpeRules", "contradictions", "load_mpe_rules"]

_SHIPPED = "data/mpe_rules.toml"


@dataclass(frozen=True, slots=True)
class MpeRule:
    """One row: the MPE of an instrument type and accuracy class under a procedure."""

    type_code: str
    accuracy_class: str
    procedure: str
    unit: str
    """ "% of volume", "% of reading" (rates in `rates`) or "e" (scale intervals, `bands`)."""
    rates: tuple[Decimal, ...] = ()
    bands: tuple[tuple[Decimal, Decimal], ...] = ()
    """(up to this many e, MPE in e), in increasing load order."""
    modes: frozenset[VerificationMode] = frozenset(VerificationMode)

    def permitted(self, check: CheckPoint, e: Decimal | None) -> tuple[Decimal, ...]:
        """The MPEs the rule allows at `check`, in the check's unit (empty: no rule applies,
        for a scale check without its scale interval `e` or beyond the last band)."""
        if self.rates:
            return tuple(r * abs(check.nominal) / 100 for r in self.rates)
        if e is None:
            return ()
        load = abs(check.nominal) / e
        return next(((k * e,) for up_to, k in self.bands if load <= up_to), ())

    def describe(self) -> str:
        """The rule as a refusal names it: "±0.5 % of volume" or "±0.5 e up to 500 e, …"."""
        if self.rates:
            return " or ".join(f"±{r} {self.unit}" for r in self.rates)
        return ", ".join(f"±{k} e up to {n} e" for n, k in self.bands)


@dataclass(frozen=True, slots=True)
class MpeRules:
    """The rules of one table, found by type code and accuracy class."""

    rules: tuple[MpeRule, ...]
    where: str

    def for_type(self, type_code: str, accuracy_class: str) -> list[MpeRule]:
        """The rules for `type_code` and `accuracy_class` (compared without case or spaces)."""
        wanted = _class_key(accuracy_class)
        return [
            r
            for r in self.rules
            if r.type_code == type_code and _class_key(r.accuracy_class) == wanted
        ]


def _class_key(text: str) -> str:
    return "".join(text.split()).upper().replace(",", ".")


def load_mpe_rules(path: Path | None = None) -> MpeRules:
    """Read the MPE rules from TOML `path` (default: the shipped table).

    Raises `ConfigError` naming the file and the rule number when the table cannot be used.
    """
    if path is None:
        text = resources.files("certissuer").joinpath(_SHIPPED).read_text("utf-8")
        where = f"certissuer/{_SHIPPED}"
    else:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the MPE rules: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    rules = []
    for i, entry in enumerate(raw.get("rule", []), 1):
        try:
            rules.append(_rule(entry))
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise ConfigError(f"{where}: [[rule]] number {i}: {exc}") from exc
    return MpeRules(tuple(rules), where)


def _rule(entry: dict[str, Any]) -> MpeRule:
    unit = str(entry["unit"])
    rates = tuple(Decimal(str(r)) for r in entry.get("mpe", []))
    bands = tuple(
        (Decimal(str(b["up_to_e"])), Decimal(str(b["mpe_e"]))) for b in entry.get("bands", [])
    )
    if unit in RELATIVE_MPE_UNITS:
        if not rates or bands:
            raise ValueError(f"unit '{unit}' needs mpe = [rates] and no bands")
    elif unit == "e":
        if not bands or rates:
            raise ValueError("unit 'e' needs bands = [{up_to_e, mpe_e}, …] and no mpe")
    else:
        raise ValueError(
            f"unit must be one of {', '.join(map(repr, [*RELATIVE_MPE_UNITS, 'e']))}, got '{unit}'"
        )
    if any(v <= 0 for v in rates) or any(n <= 0 or k <= 0 for n, k in bands):
        raise ValueError("MPE values and band limits must be positive")
    modes = frozenset(VerificationMode(m) for m in entry.get("modes", list(VerificationMode)))
    return MpeRule(
        type_code=str(entry["type"]),
        accuracy_class=str(entry["accuracy_class"]),
        procedure=str(entry["procedure"]),
        unit=unit,
        rates=rates,
        bands=tuple(sorted(bands)),
        modes=modes,
    )


def contradictions(
    cert: VerificationCertificate, type_code: str | None, rules: MpeRules
) -> list[str]:
    """One line per check point of `cert` whose typed MPE is not the one the rules give for
    its type and accuracy class; empty when it agrees, or no rule applies.

    The accuracy class is the one of the range that holds the check point (by its nominal
    value and unit), or the only class the certificate gives.
    """
    if type_code is None:
        return []
    problems = []
    classes = {r.accuracy_class for r in cert.ranges if r.accuracy_class}
    for i, check in enumerate(cert.checks):
        held = next(
            (
                r
                for r in cert.ranges
                if r.unit == check.unit and r.lower <= check.nominal <= r.upper
            ),
            None,
        )
        only = next(iter(classes)) if len(classes) == 1 else ""
        accuracy = held.accuracy_class if held and held.accuracy_class else only
        e = held.scale_interval if held and held.scale_interval_symbol == check.unit else None
        for rule in rules.for_type(type_code, accuracy):
            if cert.mode not in rule.modes:
                continue
            allowed = rule.permitted(check, e)
            where = f"checks[{i}] ({check.nominal} {check.unit})"
            if not allowed:
                problems.append(
                    f"{where}: the MPE cannot be checked against {rule.procedure} "
                    f"({rule.describe()}): no range with its scale interval e in {check.unit} "
                    "holds the check point",
                )
            elif check.permitted_error not in allowed:
                typed = f"{check.mpe} {check.mpe_symbol}"
                if check.relative:
                    typed += f" = {_plain(check.permitted_error)} {check.unit}"
                values = " or ".join(f"{_plain(a)} {check.unit}" for a in allowed)
                problems.append(
                    f"{where}: typed MPE {typed}, but {rule.procedure} gives "
                    f"{rule.describe()} = {values} for class {rule.accuracy_class}"
                )
    for i, rng in enumerate(cert.ranges):
        if rng.mpe is None or rng.mpe_unit not in RELATIVE_MPE_UNITS:
            continue
        problems.extend(
            f"ranges[{i}]: typed MPE {rng.mpe} {rng.mpe_unit}, but {rule.procedure} "
            f"gives {rule.describe()} for class {rule.accuracy_class}"
            for rule in rules.for_type(type_code, rng.accuracy_class)
            if rule.rates and cert.mode in rule.modes and rng.mpe not in rule.rates
        )
    return problems


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"
