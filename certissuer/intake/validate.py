"""Validate one certificate's data and word every problem as file, row (sheet) and field.

pydantic's error locations (``results.2.uncertainty``) become the place the user can find:
``batch.xlsx [results], row 5, field 'uncertainty'`` for a table, ``batch.json, row 3, field
'results[1].uncertainty'`` for JSON, with a hint where one helps.

>>> judge("batch.json", data, Place("batch.json", 1, "HC-1"), [])  # doctest: +SKIP
Record(...)
"""

from __future__ import annotations

import difflib
import functools
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from certissuer import dcc
from certissuer.errors import InputError
from certissuer.intake.records import Record, Rejected
from certissuer.model import (
    AnyCertificate,
    CalibrationCertificate,
    Kind,
    RowProblem,
    TestingReport,
    VerificationCertificate,
    field_path,
    parse_certificate,
)

__all__ = ["Loc", "Place", "Rows", "duplicate", "judge", "show", "submodel"]

Loc = tuple[str | int, ...]
"""A location in a certificate's data, as pydantic gives it (without the kind tag)."""

_CLASSES: Final[Mapping[str, type[AnyCertificate]]] = {
    Kind.VERIFICATION.value: VerificationCertificate,
    Kind.CALIBRATION.value: CalibrationCertificate,
    Kind.TESTING.value: TestingReport,
}
_KIND_NAMES: Final[Mapping[type[BaseModel], str]] = {cls: k for k, cls in _CLASSES.items()}
_KIND_HINT: Final = (
    "'verification' is kiểm định, 'calibration' is hiệu chuẩn, 'testing' is thử nghiệm "
    "(in lower case)"
)


# --- validation and messages ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rows:
    """Where the entries of one list field of a certificate came from."""

    where: str
    rows: tuple[int, ...]
    columns: frozenset[str]


@dataclass(frozen=True, slots=True)
class Place:
    """Where one certificate came from, to turn a pydantic error location into file/row/field."""

    where: str
    row: int
    ref: str | None
    columns: frozenset[str] | None = None
    """Columns of the certificate table; None for JSON."""
    lists: Mapping[str, Rows] = field(default_factory=dict)


def judge(
    source: str, data: dict[str, Any], place: Place, errors: list[InputError]
) -> Record | Rejected:
    """Validate the certificate `data` read from `source` at `place`: a `Record`, or a
    `Rejected` with `errors` (found while reading it) and every problem of the data."""
    cert, problems = _validate(data, place)
    errors = errors + problems
    if cert is None or errors:
        return Rejected(source, place.row, place.ref, tuple(errors))
    return Record(cert, source, place.row)


def _validate(data: dict[str, Any], place: Place) -> tuple[AnyCertificate | None, list[InputError]]:
    kind = data.get("kind")
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    screened = _screen_dates(cls, data, ()) if cls is not None else {}
    try:
        cert: AnyCertificate | None = parse_certificate(data)
        details: list[ErrorDetails] = []
    except ValidationError as exc:
        cert, details = None, exc.errors(include_url=False)
    errors: list[InputError] = []
    for detail in details:
        loc = _strip_tag(detail["loc"])
        if loc not in screened:  # a screened date is reported below, once
            errors += _convert(detail, loc, place, cls)
    for loc, value in screened.items():
        detail = ErrorDetails(type="date_parsing", loc=loc, msg="", input=value)
        errors += _convert(detail, loc, place, cls)
    if cert is not None:  # what the machine-readable certificate (DCC) cannot hold, e.g. a unit
        for loc, problem in dcc.problems(cert):
            detail = ErrorDetails(
                type="value_error", loc=loc, msg=problem, input=None, ctx={"error": problem}
            )
            errors += _convert(detail, loc, place, cls)
    return (None if errors else cert), errors


def _strip_tag(loc: tuple[str | int, ...]) -> Loc:
    """Drop the union tag ('calibration', ...) that pydantic puts first."""
    return loc[1:] if loc and loc[0] in _CLASSES else loc


_BARE_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?")


def _screen_dates(model: type[BaseModel], data: dict[str, Any], loc: Loc) -> dict[Loc, Any]:
    """Find dates given as bare numbers and blank them; return where they were.

    pydantic reads a number as a Unix time, so "0" would become 1970-01-01 and an Excel serial
    day number a wrong date. A certificate date must be written out.
    """
    found: dict[Loc, Any] = {}
    dates, models = _shapes(model)
    for name, value in data.items():
        here = (*loc, name)
        if name in dates:
            bare = isinstance(value, str) and _BARE_NUMBER.fullmatch(value.strip())
            if bare or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
                found[here] = value
                data[name] = None
        elif name in models and isinstance(value, dict):
            found.update(_screen_dates(models[name], value, here))
        elif name in models and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    found.update(_screen_dates(models[name], item, (*here, index)))
    return found


@functools.cache
def _shapes(model: type[BaseModel]) -> tuple[frozenset[str], Mapping[str, type[BaseModel]]]:
    """The fields of `model` that hold a date, and those that hold a model (alone or in a list)."""
    dates = frozenset(
        name for name, info in model.model_fields.items() if date in _flatten(info.annotation)
    )
    models: dict[str, type[BaseModel]] = {}
    for name, info in model.model_fields.items():
        sub = submodel(info.annotation)
        if sub is not None:
            models[name] = sub
    return dates, models


def _convert(
    detail: ErrorDetails, loc: Loc, place: Place, cls: type[AnyCertificate] | None
) -> list[InputError]:
    """Turn one pydantic error into InputErrors naming the file, row and field."""
    kind = detail["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if kind == "union_tag_not_found":
            problem = "missing (required): 'verification' or 'calibration'"
        else:
            tag = (detail.get("ctx") or {}).get("tag")
            problem = f"expected 'verification' or 'calibration', got {show(tag)}"
        return [InputError(place.where, problem, row=place.row, field="kind", hint=_KIND_HINT)]
    found = (detail.get("ctx") or {}).get("error")
    if (
        kind == "value_error"
        and not loc
        and isinstance(found, RowProblem)
        and found.table in place.lists
    ):
        # A problem of one list row the report found across its rows: on that list-table row
        # and column (JSON keeps the text, which names the row).
        loc = (found.table, found.index, found.field)
        detail = ErrorDetails(
            type="value_error", loc=loc, msg=found.problem, input=None, ctx={"error": found.problem}
        )
    if place.columns is None:  # JSON: the field is the path inside the record
        problem, hint = _describe(detail, loc, cls)
        return [
            InputError(
                place.where, problem, row=place.row, field=field_path(loc) or None, hint=hint
            )
        ]
    head = loc[0] if loc else None
    if isinstance(head, str) and head in place.lists:
        return _list_errors(detail, loc, place, place.lists[head], cls)
    if len(loc) == 2 and isinstance(head, str) and isinstance(loc[1], int):
        # One name of a cell that lists names (customer_supplied): the cell is the field.
        problem, hint = _describe(detail, loc, cls)
        return [
            InputError(
                place.where,
                f"name {loc[1] + 1} in the cell: {problem}",
                row=place.row,
                field=head,
                hint=hint or "separate the names with commas",
            )
        ]
    name = ".".join(str(part) for part in loc)
    if kind == "missing":
        model = _model_at(cls, loc) if cls is not None and loc else None
        names = list(_required_leaves(model, f"{name}.")) if model is not None else [name]
        return [
            InputError(
                place.where,
                "missing (required)",
                row=place.row,
                field=leaf,
                hint=None if leaf in place.columns else f"add a column '{leaf}'",
            )
            for leaf in names
        ]
    problem, hint = _describe(detail, loc, cls)
    value = detail.get("input")
    if kind == "extra_forbidden" and isinstance(value, dict):  # a whole group of columns
        return [
            InputError(place.where, problem, row=place.row, field=leaf, hint=hint)
            for leaf in _leaf_names(value, f"{name}.")
        ]
    return [InputError(place.where, problem, row=place.row, field=name or None, hint=hint)]


def _leaf_names(value: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key, item in value.items():
        if isinstance(item, Mapping):
            yield from _leaf_names(item, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _list_errors(
    detail: ErrorDetails, loc: Loc, place: Place, rows: Rows, cls: type[AnyCertificate] | None
) -> list[InputError]:
    """Errors inside a list field: on the list-table row when there is one."""
    kind = detail["type"]
    table = str(loc[0])
    if len(loc) >= 2 and isinstance(loc[1], int) and loc[1] < len(rows.rows):
        name = ".".join(str(part) for part in loc[2:])
        problem, hint = _describe(detail, loc, cls)
        if kind == "missing" and name and name not in rows.columns:
            hint = f"add a column '{name}'"
        return [
            InputError(rows.where, problem, row=rows.rows[loc[1]], field=name or None, hint=hint)
        ]
    if kind in ("missing", "too_short"):
        problem = f"missing (required): {rows.where} has no rows with ref '{place.ref}'"
        return [InputError(place.where, problem, row=place.row, field=table)]
    if kind == "extra_forbidden" and cls is not None and rows.rows:
        other = _KIND_NAMES[_other(cls)]
        return [
            InputError(
                rows.where,
                f"certificate '{place.ref}' is a {_KIND_NAMES[cls]} certificate, "
                f"which has no {table}",
                row=rows.rows[0],
                field="ref",
                hint=f"{table} belong to {other} certificates; correct the ref or the kind",
            )
        ]
    problem, hint = _describe(detail, loc, cls)
    return [InputError(place.where, problem, row=place.row, field=table, hint=hint)]


_NUMBER_ERRORS: Final = frozenset(
    {"decimal_parsing", "decimal_type", "float_parsing", "float_type", "decimal_max_digits"}
)
_INT_ERRORS: Final = frozenset({"int_parsing", "int_type", "int_from_float", "int_parsing_size"})
_DATE_ERRORS: Final = frozenset(
    {
        "date_parsing",
        "date_type",
        "date_from_datetime_parsing",
        "date_from_datetime_inexact",
        "date_past",
        "date_future",
    }
)


def _describe(
    detail: ErrorDetails, loc: Loc, cls: type[AnyCertificate] | None
) -> tuple[str, str | None]:
    """pydantic's message in the words of a lab: what was expected, what was found."""
    kind = detail["type"]
    value = detail.get("input")
    ctx = detail.get("ctx") or {}
    got = show(value)
    if kind == "missing":
        return "missing (required)", None
    if kind in _NUMBER_ERRORS:
        return f"expected a number, got {got}", _number_hint(value)
    if kind in _INT_ERRORS:
        return f"expected a whole number, got {got}", None
    if kind == "finite_number":
        return f"expected a finite number, got {got}", None
    if kind == "greater_than":
        bound = ctx.get("gt")
        if bound == 0:
            return f"expected a positive number, got {got}", None
        return f"expected a number greater than {bound}, got {got}", None
    if kind == "greater_than_equal":
        bound = ctx.get("ge")
        if bound == 0:
            return f"expected zero or a positive number, got {got}", None
        return f"expected a number of at least {bound}, got {got}", None
    if kind == "less_than":
        return f"expected a number less than {ctx.get('lt')}, got {got}", None
    if kind == "less_than_equal":
        return f"expected a number of at most {ctx.get('le')}, got {got}", None
    if kind in _DATE_ERRORS:
        return (
            f"expected a date YYYY-MM-DD, got {got}",
            "write dates as year-month-day, for example 2026-11-24",
        )
    if kind == "string_too_short":
        return "expected some text, got an empty value", None
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "more"
        return f"expected at most {ctx.get('max_length')} characters, got {length}", None
    if kind == "string_type":
        return f"expected text, got {got}", "put the value in double quotes"
    if kind in ("literal_error", "enum"):
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        named = [f"'{c}'" for c in choices if c]
        text = ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else "".join(named)
        if "" in choices:
            text += " (or nothing)"
        return f"expected {text}, got {got}", None
    if kind == "value_error":
        return str(ctx.get("error", detail["msg"])), None
    if kind == "extra_forbidden":
        return _unknown_field(loc, cls)
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} entry, got none", None
    if kind == "list_type":
        return f"expected a list [...], got {got}", None
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object {{...}}, got {got}", None
    message = detail["msg"]
    return message[:1].lower() + message[1:], None


def _number_hint(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?\d*,\d+", text):
        return "use a dot as the decimal separator"
    if "," in text:
        return "write numbers without thousands separators, with a dot as the decimal separator"
    if text.endswith("%"):
        return "give the plain number without % (in Excel: format the cell as Number)"
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?\s*\S.*", text):
        return "give only the number; the unit has its own field"
    return None


def _unknown_field(loc: Loc, cls: type[AnyCertificate] | None) -> tuple[str, str | None]:
    name = str(loc[-1]) if loc else ""
    if cls is None:
        return "unknown field", None
    kind = _KIND_NAMES[cls]
    other = _other(cls)
    other_parent = _model_at(other, loc[:-1])
    if other_parent is not None and name in other_parent.model_fields:
        return (
            f"not used on a {kind} certificate "
            f"(it is a field of {_KIND_NAMES[other]} certificates)",
            "leave it empty for this certificate, or correct the kind",
        )
    parent = _model_at(cls, loc[:-1])
    near = difflib.get_close_matches(name, list(parent.model_fields), n=1) if parent else []
    return (
        f"unknown field: a {kind} certificate has no field of this name",
        f"did you mean '{near[0]}'?" if near else None,
    )


def show(value: Any) -> str:
    """A value as quoted in a message: ``'0,05'``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object {...}"
    if isinstance(value, list):
        return "a list [...]"
    text = str(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'"


# --- model introspection -------------------------------------------------------------------


def _other(cls: type[AnyCertificate]) -> type[AnyCertificate]:
    return VerificationCertificate if cls is not VerificationCertificate else CalibrationCertificate


def _flatten(annotation: Any) -> Iterator[Any]:
    """The plain types in an annotation: through ``Annotated``, unions and ``list``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _flatten(get_args(annotation)[0])
    elif origin in (Union, types.UnionType, list):
        for arg in get_args(annotation):
            yield from _flatten(arg)
    else:
        yield annotation


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class inside a field's `annotation` (``list[Measurement] | None`` gives
    `Measurement`), or None for a plain value."""
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _model_at(cls: type[BaseModel], loc: Iterable[str | int]) -> type[BaseModel] | None:
    """The model found at `loc` inside `cls`, or None when `loc` is not a model."""
    model = cls
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        sub = submodel(info.annotation) if info is not None else None
        if sub is None:
            return None
        model = sub
    return model


def _required_leaves(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """The dotted names of the required plain fields of `model`, for 'missing' messages."""
    for name, info in model.model_fields.items():
        if not info.is_required():
            continue
        sub = submodel(info.annotation)
        if sub is not None and get_origin(info.annotation) is not list:
            yield from _required_leaves(sub, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def duplicate(where: str, row: int, ref: str | None, seen: dict[str, int]) -> list[InputError]:
    """Remember `ref` at `row`, or return the error for a second use of it."""
    if ref is None:
        return []
    if ref in seen:
        return [
            InputError(
                where,
                f"duplicate ref '{ref}': row {seen[ref]} has it already",
                row=row,
                field="ref",
                hint="give each certificate its own ref",
            )
        ]
    seen[ref] = row
    return []
