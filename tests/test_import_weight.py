"""Reading code stays light: importing `certissuer.verify` loads no rendering or issuing code.

`certissuer verify FILE` and the page's PDF workers import `certissuer.verify`; z3c.rml and
reportlab (rendering), and certissuer's writing modules, would only cost start-up time and
memory there (issue 15). Each case runs in a fresh interpreter, so earlier imports do not hide
a heavy one.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_HEAVY_THIRD_PARTY = {"z3c", "reportlab"}
_WRITING = {"certissuer.render", "certissuer.issue", "certissuer.sign", "certissuer.cli"}
_FACES = {"certissuer.cli", "certissuer.web"}


def _loaded(module: str) -> set[str]:
    code = (
        f"import {module}, sys, json; print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'z3c', 'reportlab', 'certissuer', 'fastapi', 'uvicorn'})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return set(json.loads(out.stdout))


def _under(loaded: set[str], packages: set[str]) -> set[str]:
    return {m for m in loaded if any(m == p or m.startswith(p + ".") for p in packages)}


def test_verify_loads_no_rendering_issuing_or_faces() -> None:
    # The package resolves its names on use: import the modules that do the checking.
    loaded = _loaded(
        "certissuer.verify.verifier, certissuer.verify._standing, certissuer.verify._bounded"
    )
    assert "certissuer.verify" in loaded
    assert not {m for m in loaded if m.split(".")[0] in _HEAVY_THIRD_PARTY}
    assert not _under(loaded, _WRITING | _FACES)


def _top_level(modules: str) -> set[str]:
    code = (
        f"import {modules}, sys, json; print(json.dumps(sorted({{m.split('.')[0] "
        "for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return set(json.loads(out.stdout))


def test_the_checking_child_loads_no_sql_stack() -> None:
    # `certissuer verify FILE` reads the file in a child that holds pyHanko and the DCC
    # reader, and asks the ledger in the parent: neither process holds both stacks.
    loaded = _loaded("certissuer.verify.verifier, certissuer.dcc")
    assert not _under(loaded, {"certissuer.ledger", "certissuer.verify._standing"})
    assert not {"sqlalchemy", "sqlmodel"} & _top_level("certissuer.verify.verifier, certissuer.dcc")


def test_the_ledger_side_of_verify_loads_no_pdf_library() -> None:
    modules = "certissuer.verify._standing, certissuer.verify._bounded, certissuer.verify._info"
    assert not {"pyhanko", "pyhanko_certvalidator", "pikepdf"} & _top_level(modules)
    assert not _under(_loaded(modules), {"certissuer.verify.verifier", "certissuer.verify._pades"})


def test_token_loads_no_pdf_code() -> None:
    loaded = _loaded("certissuer.token")
    assert not _under(loaded, _WRITING | _FACES | {"certissuer.verify"})
    assert not {m for m in loaded if m.split(".")[0] in _HEAVY_THIRD_PARTY}


def test_package_imports_lazily() -> None:
    loaded = _loaded("certissuer")
    assert not {m for m in loaded if m.split(".")[0] in _HEAVY_THIRD_PARTY}
    assert not _under(loaded, _WRITING | _FACES | {"certissuer.verify", "certissuer.ledger"})


@pytest.mark.parametrize("name", ["Issuer", "Verifier", "Ledger", "Report", "read_certificates"])
def test_package_names_resolve_on_use(name: str) -> None:
    code = f"import certissuer; print(certissuer.{name}.__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == name


def test_web_worker_loads_no_web_framework() -> None:
    # The PDF workers' fork server preloads it under a memory limit.
    loaded = _loaded("certissuer.web.worker")
    assert not {m for m in loaded if m.split(".")[0] in {"fastapi", "uvicorn", *_HEAVY_THIRD_PARTY}}
    assert not _under(loaded, {"certissuer.web.app", "certissuer.cli"})


def test_the_command_line_starts_without_the_libraries_its_commands_use() -> None:
    # `certissuer --help` (and every command's start) loads Typer and the settings only: the
    # database, PDF, signing and web libraries come with the command that uses them.
    code = (
        "import certissuer.cli, sys, json; print(json.dumps(sorted({m.split('.')[0] "
        "for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    heavy = {"sqlalchemy", "sqlmodel", "pyhanko", "reportlab", "z3c", "pikepdf", "fastapi"}
    assert not heavy & set(json.loads(out.stdout))
