"""Shared fixtures: a real PKI made with cryptography, real SQLite (and PostgreSQL) ledgers."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from certissuer.config import Settings
from certissuer.keys import KeyPaths, make_keys
from certissuer.ledger import Ledger
from certissuer.model import parse_certificate

from ._pki import lab_pki, pki_services  # noqa: F401  (fixtures: the PAdES test PKI)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PASSPHRASE = b"test-passphrase-5b1d"
HEAD = "Lê Hoàng Phúc"
"""The head of the lab and authorised signatory the samples print."""
VERIFIER = "Phạm Minh Tuấn"
"""The verifier the sample verification prints."""


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's workers start with COLUMNS=80 in their environment, and rich fixes the
    # width of a console made while COLUMNS is set (the CLI's consoles are made on import,
    # after this): without it they follow COLUMNS as each test sets it, as in a serial run.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)
        os.environ.pop("LINES", None)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    """The lab's PKI: CA, RSA-2048 signer (PKCS#12) and ECDSA P-256 token key. The signer is the
    head and authorised signatory the samples print, "Lê Hoàng Phúc"."""
    return make_keys(
        tmp_path_factory.mktemp("pki"),
        passphrase=PASSPHRASE,
        organisation="Test lab",
        signer_name=HEAD,
    )


@pytest.fixture(scope="session")
def verifier_pki(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    """The verifier's own key (from their own CA): "Phạm Minh Tuấn", who signs verification
    certificates first when the head approves them later."""
    return make_keys(
        tmp_path_factory.mktemp("verifier-pki"),
        passphrase=PASSPHRASE,
        organisation="Test lab",
        signer_name=VERIFIER,
    )


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> KeyPaths:
    """Somebody else's PKI: signatures made with it must not be trusted. Its signer claims
    the head's name, as a forger would."""
    return make_keys(
        tmp_path_factory.mktemp("other-pki"),
        passphrase=PASSPHRASE,
        organisation="Forger",
        signer_name=HEAD,
    )


def lab_settings(
    keys: KeyPaths | None = None, *, ledger: Path | str | None = None, **changes: Any
) -> Settings:
    """The test lab's profile, the one way tests build `Settings`.

    The lab is T01, "Phòng thí nghiệm thử nghiệm", with tokens under
    https://verify.test.invalid. `keys` (a `make_keys` result) signs with its PKCS#12 file,
    trusts its CA and signs QR tokens; `ledger` is a folder (for ``ledger.db`` in it) or a
    database URL; `changes` set any other field, as `Settings.replace` does.
    """
    values: dict[str, Any] = {
        "lab_code": "T01",
        "lab_name_vi": "Phòng thí nghiệm thử nghiệm",
        "lab_name_en": "Test laboratory",
        "lab_place": "Đồng Tháp",
        "token_url_base": "https://verify.test.invalid",
    }
    if keys is not None:
        values |= {
            "signing_pkcs12": keys.signer_p12,
            "signing_trust_roots": (keys.ca_cert,),
            "token_key": keys.token_key,
        }
    if isinstance(ledger, Path):
        values["ledger_url"] = f"sqlite:///{ledger / 'ledger.db'}"
    elif ledger is not None:
        values["ledger_url"] = ledger
    return Settings(**(values | changes))


@pytest.fixture
def settings(tmp_path: Path, pki: KeyPaths) -> Settings:
    """The test lab signing with `pki`, its ledger in `tmp_path`."""
    return lab_settings(pki, ledger=tmp_path)


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.open(settings.ledger_url)


@pytest.fixture(scope="session")
def renderer() -> Any:
    from certissuer.render import Renderer

    return Renderer()


@pytest.fixture(scope="session")
def sealer(pki: KeyPaths) -> Any:
    from certissuer.sign import Sealer

    return Sealer.from_pkcs12(pki.signer_p12, PASSPHRASE)


@pytest.fixture
def issuer(settings: Settings, ledger: Ledger, sealer: Any, renderer: Any, tmp_path: Path) -> Any:
    from certissuer.issue import Issuer, load_token_key

    return Issuer(
        settings,
        ledger=ledger,
        sealer=sealer,
        token_key=load_token_key(settings),
        out_dir=tmp_path / "out",
        renderer=renderer,
    )


@pytest.fixture
def verifier(settings: Settings, ledger: Ledger) -> Any:
    from certissuer.verify import Verifier

    return Verifier.from_settings(settings, ledger=ledger)


@pytest.fixture
def cal_data() -> dict[str, Any]:
    data: dict[str, Any] = load_json(SAMPLES / "calibration.json")
    return data


@pytest.fixture
def ver_data() -> dict[str, Any]:
    data: dict[str, Any] = load_json(SAMPLES / "verification.json")
    return data


@pytest.fixture
def cal_cert(cal_data: dict[str, Any]) -> Any:
    return parse_certificate(cal_data)


@pytest.fixture
def ver_cert(ver_data: dict[str, Any]) -> Any:
    return parse_certificate(ver_data)


def _pg_base_url() -> str | None:
    return os.environ.get("CERTISSUER_TEST_PG_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh ledger URL on each back end: an SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    base = _pg_base_url()
    if not base:
        if os.environ.get("CI"):
            pytest.fail("CERTISSUER_TEST_PG_URL must be set in CI")
        pytest.skip("no PostgreSQL: set CERTISSUER_TEST_PG_URL to run the PostgreSQL tests")
    import sqlalchemy

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(base)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at CERTISSUER_TEST_PG_URL is not reachable: {exc.orig}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()
