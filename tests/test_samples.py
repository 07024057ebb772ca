"""Smoke test on the shipped samples and demo keys, the way `make demo` runs them.

Also reads the PDFs the way a person would: pdftotext for the words on each page, pdffonts for
embedded fonts, and zbarimg on a pdftoppm render for the QR code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from certissuer.cli import app

from .conftest import SAMPLES

TOOLS = ("pdftotext", "pdffonts", "pdftoppm", "zbarimg")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="needs poppler-utils and zbar-tools (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("demo")
    env = {
        "CERTISSUER_P12_PASSPHRASE": "demo",
        "CERTISSUER_LEDGER_URL": f"sqlite:///{tmp / 'ledger.db'}",
    }
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(SAMPLES / "certissuer.toml"),
            "issue",
            "--json",
            "--out",
            str(tmp),
            str(SAMPLES / "calibration.json"),
            str(SAMPLES / "verification.json"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    return env, json.loads(result.stdout)["issued"]


def _pages(pdf: str) -> list[str]:
    text = subprocess.run(
        ["pdftotext", "-layout", pdf, "-"], check=True, capture_output=True, text=True
    ).stdout
    return [p for p in text.split("\f") if p.strip()]


def test_samples_verify_with_demo_keys(demo: tuple[dict[str, str], list[dict[str, str]]]) -> None:
    env, issued = demo
    for item in issued:
        result = CliRunner().invoke(
            app,
            [
                "--config",
                str(SAMPLES / "certissuer.toml"),
                "verify",
                "--json",
                item["entry"]["pdf_path"],
            ],
            env=env,
        )
        assert result.exit_code == 0, result.stdout
        assert json.loads(result.stdout)["number"] == item["entry"]["number"]


@pytest.mark.parametrize(
    ("index", "title"), [(0, "GIẤY CHỨNG NHẬN HIỆU CHUẨN"), (1, "GIẤY CHỨNG NHẬN KIỂM ĐỊNH")]
)
def test_every_page_has_title_number_and_page_x_of_y(
    demo: tuple[dict[str, str], list[dict[str, str]]], index: int, title: str
) -> None:
    item = demo[1][index]
    pages = _pages(item["entry"]["pdf_path"])
    assert title in pages[0]
    for n, page in enumerate(pages, 1):
        assert item["entry"]["number"] in page, f"page {n} lacks the number"
        assert f"Trang {n}/{len(pages)}" in page, f"page {n} lacks 'Trang {n}/{len(pages)}'"


def test_all_fonts_are_embedded(demo: tuple[dict[str, str], list[dict[str, str]]]) -> None:
    for item in demo[1]:
        rows = subprocess.run(
            ["pdffonts", item["entry"]["pdf_path"]], check=True, capture_output=True, text=True
        ).stdout.splitlines()[2:]
        assert rows, "no fonts listed"
        for row in rows:
            emb = row.split()[-5]
            assert emb == "yes", row


def test_qr_code_on_the_page_decodes_to_the_token_url(
    demo: tuple[dict[str, str], list[dict[str, str]]], tmp_path: Path
) -> None:
    env, issued = demo
    for item in issued:
        stem = tmp_path / Path(item["entry"]["pdf_path"]).stem
        subprocess.run(
            ["pdftoppm", "-r", "150", "-png", item["entry"]["pdf_path"], str(stem)], check=True
        )
        found: list[str] = []
        for png in sorted(tmp_path.glob(f"{stem.name}*.png")):
            res = subprocess.run(
                ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True
            )
            found += [line for line in res.stdout.splitlines() if line]
        assert item["url"] in found
        result = CliRunner().invoke(
            app, ["--config", str(SAMPLES / "certissuer.toml"), "verify", "--qr", found[0]], env=env
        )
        assert result.exit_code == 0, result.stdout
