"""The one error boundary of the command line, and the one place that sets up logging.

Every command runs inside `run_guarded`: a `CertissuerError` becomes one line (and its hint)
on standard error and the exit code the README's table gives it; a few third-party errors that
mean "this input file cannot be read" are worded as input errors (exit 2); anything else is
exit 1, "internal error", with a traceback only under ``--verbose``. ``--verbose`` adds the
debug log and tracebacks and never changes an exit code. Commands carry no try/except of their
own.

`GuardedGroup` is the root command's class, so the console script, ``python -m certissuer``
and Typer's test runner all go through the same boundary.
"""

from __future__ import annotations

import csv
import logging
import sys
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from certissuer.cli._state import State, err
from certissuer.errors import CertissuerError, InputError

__all__ = ["NOISY_LOGGERS", "GuardedGroup", "as_certissuer_error", "run_guarded", "setup_logging"]

_logger = logging.getLogger(__name__)

NOISY_LOGGERS = (
    "pyhanko",
    "pyhanko_certvalidator",
    "fontTools",
    "reportlab",
    "z3c",
    "urllib3",
    "asyncio",
    "PIL",
    "sqlalchemy",
    "alembic",
    "pikepdf",
    "multipart",
    "httpx",
)
"""Third-party loggers kept below ERROR unless ``--verbose``: pyHanko, for one, logs a warning
with a traceback for every signature it cannot trust, which the verdict already says."""


def setup_logging(verbose: bool) -> None:
    """Log to standard error: ours at WARNING (DEBUG with `verbose`), third parties at ERROR."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)


def as_certissuer_error(exc: BaseException) -> CertissuerError | None:
    """`exc` worded as the `CertissuerError` it means, or None for a bug.

    Library code wraps third-party errors where they enter it (``raise InputError(...) from
    exc``); these are the ones that can still escape from reading an input file, a spreadsheet
    that is not one above all.
    """
    if isinstance(exc, CertissuerError):
        return exc
    if isinstance(exc, zipfile.BadZipFile):
        return InputError(
            "input", f"a spreadsheet is not a readable XLSX workbook ({exc})",
            hint="save it again as .xlsx from the spreadsheet program, or use CSV",
        )  # fmt: skip
    if isinstance(exc, csv.Error):
        return InputError("input", f"a CSV file cannot be read ({exc})")
    openpyxl_errors = sys.modules.get("openpyxl.utils.exceptions")
    invalid_file = getattr(openpyxl_errors, "InvalidFileException", None)
    if invalid_file is not None and isinstance(exc, invalid_file):
        return InputError(
            "input", f"a spreadsheet cannot be read ({exc})", hint="use .xlsx or .csv files"
        )
    return None


def _report(exc: CertissuerError, state: State) -> int:
    err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    if exc.hint:
        err.print(f"hint: {exc.hint}", markup=False, soft_wrap=True)
    if state.verbose:
        err.print_exception()
    return exc.exit_code


def run_guarded(invoke: Callable[[State], Any], state: State) -> int:
    """Run `invoke` (the parsed command line) with `state`; return the process's exit code."""
    try:
        result = invoke(state)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # a usage error (Typer's own words), exit 2
        from typer import rich_utils

        # TyperException is the public base of Typer's usage errors (its ClickException).
        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
        return exc.exit_code
    except typer.Abort:
        err.print("Aborted.", markup=False)
        return 1
    except Exception as exc:
        known = as_certissuer_error(exc)
        if known is not None:
            if known is not exc:
                _logger.debug("%s worded as %s", type(exc).__name__, type(known).__name__)
            return _report(known, state)
        err.print("internal error: run again with -v and report it", markup=False)
        if state.verbose:
            err.print_exception()
        return 1
    # With standalone_mode=False click returns an Exit's code, or the command's return value.
    return result if isinstance(result, int) else 0


class GuardedGroup(TyperGroup):
    """The root command: parses and runs the command line inside `run_guarded`."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> int:
        """Run the command line; exit with its code, or return it when not `standalone_mode`."""
        given = extra.pop("obj", None)
        state = given if isinstance(given, State) else State()

        def invoke(state: State) -> Any:
            return super(GuardedGroup, self).main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                obj=state,
                **extra,
            )

        code = run_guarded(invoke, state)
        if standalone_mode:
            sys.exit(code)
        return code
