"""The package's layers, checked on every run: import-linter's contracts in pyproject.toml.

Dependencies point one way (faces, orchestration, pipeline steps, data, foundation), reading
code (verify, token, ledger, model) never imports rendering, issuing or the faces, and no
package's modules import each other in a circle. A broken contract names the import chain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint_imports(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run(
        [exe, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_every_import_contract_is_kept() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_a_contract_catches_an_upward_import(tmp_path: Path) -> None:
    # The same contracts on a copy of the package in which the token module imports the
    # renderer: the check must fail and name the import (a contract that cannot fail is none).
    copy = tmp_path / "certissuer"
    shutil.copytree(ROOT / "certissuer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    token = copy / "token.py"
    token.write_text(token.read_text() + "\nfrom certissuer.render import Renderer  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run(
        [exe, "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "certissuer.token -> certissuer.render" in done.stdout
