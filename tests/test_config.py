from __future__ import annotations

from pathlib import Path

import pytest

from certissuer.config import Settings, load_settings, starter_config
from certissuer.errors import ConfigError


def test_toml_then_environment_override(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(
        '[lab]\ncode = "DT9"\n[ledger]\nurl = "sqlite:///a.db"\n[signing]\npkcs12 = "k/s.p12"\n'
        'trust_roots = ["k/ca.pem"]\n',
        encoding="utf-8",
    )
    s = load_settings(tmp_path / "lab.toml", env={"CERTISSUER_LEDGER_URL": "sqlite:///b.db"})
    assert s.lab_code == "DT9"
    assert s.ledger_url == "sqlite:///b.db"
    assert s.signing_pkcs12 == (tmp_path / "k" / "s.p12").resolve()
    assert s.signing_trust_roots == ((tmp_path / "k" / "ca.pem").resolve(),)
    assert s.series_for("verification") == "KĐ" and s.series_for("calibration") == "HC"


def test_unknown_key_lists_the_valid_ones(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text('[ledger]\nurll = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown setting \[ledger\] urll") as info:
        load_settings(tmp_path / "lab.toml", env={})
    assert info.value.hint is not None and "[ledger] url" in info.value.hint


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text("[lab\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lab\.toml: cannot read"):
        load_settings(tmp_path / "lab.toml", env={})


def test_missing_profile_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as info:
        load_settings(tmp_path / "none.toml", env={})
    assert info.value.hint is not None and "certissuer init" in info.value.hint


def test_found_by_environment_variable(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('[lab]\ncode = "ENV"\n', encoding="utf-8")
    assert (
        load_settings(None, env={"CERTISSUER_CONFIG": str(tmp_path / "x.toml")}).lab_code == "ENV"
    )


def test_starter_config_loads(tmp_path: Path) -> None:
    (tmp_path / "certissuer.toml").write_text(starter_config("ABC"), encoding="utf-8")
    s = load_settings(tmp_path / "certissuer.toml", env={})
    assert s.lab_code == "ABC" and s.token_key == (tmp_path / "keys" / "token-key.pem").resolve()
    assert isinstance(s, Settings)
