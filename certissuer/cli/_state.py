"""What every command shares: the run's state, the two consoles, and the secrets it asks for.

`State` travels in click's ``ctx.obj``; the error boundary creates it and the root callback
fills it from ``--config`` and ``--verbose``. Text built from data or settings is printed with
``markup=False`` or through `rich.markup.escape`, so ``[signing]`` prints as written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from certissuer.config import Settings, load_settings
from certissuer.errors import ConfigError

if TYPE_CHECKING:
    from certissuer.config import KeySource
    from certissuer.issue import Issuer
    from certissuer.ledger import Ledger
    from certissuer.token import TokenKey

__all__ = [
    "State",
    "err",
    "issuer",
    "open_ledger",
    "out",
    "passphrase",
    "print_table",
    "say",
    "secrets",
    "token_key",
    "warn",
]

err = Console(stderr=True, highlight=False)
"""Diagnostics, progress and notes: standard error."""

out = Console(highlight=False)
"""Results: standard output."""


@dataclass
class State:
    """One run of the command line: the profile it reads and how much it tells."""

    config: Path | None = None
    """``--config``; None: ``$CERTISSUER_CONFIG`` or ``./certissuer.toml``."""
    verbose: bool = False
    """``--verbose``: debug log and tracebacks (never a different exit code)."""

    def settings(self) -> Settings:
        """The layered settings: defaults, the profile, then ``CERTISSUER_*`` variables."""
        return load_settings(self.config, env=os.environ)


def say(text: str) -> None:
    """Print `text` to standard output as written (no markup, no wrapping)."""
    out.print(text, markup=False, soft_wrap=True)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    keep: Collection[str] = (),
) -> None:
    """Print `rows` under `columns` to standard output, readable wherever it goes.

    On a terminal: a Rich table as wide as the terminal, the `keep` columns (numbers, dates:
    what must not break) never wrapped, the others folded only at spaces when the row does not
    fit. Piped or redirected: plain text, one line per row, columns aligned with two spaces and
    nothing cut or wrapped, so ``grep`` and ``sort`` see whole rows.
    """
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if out.is_terminal:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(title) if title else None)
        for name in columns:
            table.add_column(name, no_wrap=name in keep, overflow="fold")
        for row in cells:
            table.add_row(*[escape(c) for c in row])
        out.print(table)
        return
    widths = [max([len(name), *(len(r[i]) for r in cells)]) for i, name in enumerate(columns)]
    if title:
        say(title)
    for row in [list(columns), *cells]:
        say("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def warn(text: str) -> None:
    """Print `text` to standard error as written (no markup, no wrapping)."""
    err.print(text, markup=False, soft_wrap=True)


def passphrase(settings: Settings) -> bytes | None:
    """The signing key's passphrase, or the token's PIN when the key is on a PKCS#11 token.

    Read from the variable `settings` names, else asked at a terminal prompt; raises
    `ConfigError` when neither is possible. None for a token whose reader has a PIN pad
    (the PIN is typed there), or when no terminal can ask (the token then says whether it
    needs one), and when the profile has no ``[signing]`` key (``[[people]]`` keys only).
    """
    source = settings.signing_source()
    if source is None:
        return None
    if source.pin_value or source.pin_source:
        return source.uri_pin()  # the [signing] pkcs11_uri says where the PIN is
    module = source.pkcs11_module
    token = module is not None
    env = settings.signing_pin_env if token else settings.signing_passphrase_env
    value = os.environ.get(env)
    if value is not None:
        return value.encode()
    if module is not None:
        from certissuer.sign import token_has_pin_pad

        if token_has_pin_pad(
            module, token_label=source.pkcs11_token, token_serial=source.pkcs11_token_serial
        ):
            warn("Enter the PIN on the reader's PIN pad.")
            return None
    if sys.stdin.isatty():
        prompt = "Token PIN" if token else "PKCS#12 passphrase"
        return str(typer.prompt(prompt, hide_input=True)).encode()
    raise ConfigError(
        f"no {'PIN for the token' if token else 'passphrase for the signing key'}: set ${env}",
        hint="or run the command in a terminal to be asked for it",
    )


def secrets(settings: Settings, signing: bytes | None) -> Callable[[KeySource], bytes | None]:
    """The passphrase or PIN of each ``[[people]]`` key: from the variable it names (or a
    ``pkcs11:`` URI's pin-source), else the reader's PIN pad, else asked at a terminal, once
    per file or token. `signing` stands in for the ``[signing]`` key's variable."""
    from certissuer.sign import env_secret, token_has_pin_pad

    from_env = env_secret(settings, signing, os.environ)
    known: dict[tuple[object, ...], bytes | None] = {}

    def secret(source: KeySource) -> bytes | None:
        ident = source.token_identity()
        if ident in known:
            return known[ident]
        full = settings.resolved(source)
        var = full.pin_env if full.on_token else full.passphrase_env
        value: bytes | None
        signing_var = settings.signing_pin_env if full.on_token else settings.signing_passphrase_env
        if (
            source.pin_value
            or source.pin_source
            or var in os.environ
            or (signing is not None and var == signing_var)
        ):
            value = from_env(source)
        elif full.pkcs11_module is not None and token_has_pin_pad(
            full.pkcs11_module,
            token_label=full.pkcs11_token,
            token_serial=full.pkcs11_token_serial,
        ):
            warn(f"{source.where}: enter the PIN on the reader's PIN pad.")
            value = None
        elif sys.stdin.isatty():
            what = "Token PIN" if full.on_token else "PKCS#12 passphrase"
            value = str(typer.prompt(f"{what} ({source.where})", hide_input=True)).encode()
        else:
            value = from_env(source)  # a token may need none; a file's says which variable
        known[ident] = value
        return value

    return secret


def issuer(state: State, out_dir: Path) -> Issuer:
    """An `Issuer` for the profile of `state`, writing PDFs under `out_dir`."""
    from certissuer.issue import Issuer

    settings = state.settings()
    signing = passphrase(settings)
    return Issuer.from_settings(
        settings, passphrase=signing, out_dir=out_dir, secret=secrets(settings, signing)
    )


def open_ledger(
    settings: Settings, *, create: bool = False, ledger_key: TokenKey | None = None
) -> Ledger:
    """The ledger of the lab `settings` describe (``[ledger] url``), opened for that lab.

    One lab, one ledger (issue 16): a ledger recorded for another lab code is refused with
    `LedgerError` (exit 7) by every command, as `Issuer.from_settings` does. With `create`
    (commands that may write: reports, the register) a new ledger is made and bound to the
    lab; without it the ledger must exist and is only checked, never written.
    """
    from certissuer.ledger import Ledger

    return Ledger.open(
        settings.ledger_url,
        create=create,
        ledger_key=ledger_key,
        lab_code=settings.lab_code,
        profile=settings.source,
    )


def token_key(state: State) -> TokenKey:
    """The lab's token (and ledger event) signing key from the profile of `state`."""
    from certissuer.issue import load_token_key

    return load_token_key(state.settings())
