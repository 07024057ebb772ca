"""The starter profile is generated from the settings model, and ``config show`` says where each
setting in effect comes from (issue 19)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from certissuer.cli import app
from certissuer.config import Settings, load_settings
from certissuer.profile import starter_config

runner = CliRunner()


def _names() -> list[str]:
    return [f.name for f in dataclasses.fields(Settings) if "_" in f.name]  # not people


def test_the_starter_lists_every_setting_once_with_its_section(tmp_path: Path) -> None:
    text = starter_config("ABC")
    sections = re.findall(r"^\[(\w+)\]$", text, re.M)
    assert len(sections) == len(set(sections))  # one table per section: valid TOML
    for name in _names():
        section, key = name.split("_", 1)
        block = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        assert re.search(rf"^(# )?{key} = ", block, re.M), f"[{section}] {key} is missing"


def test_every_default_line_uncommented_loads_to_the_default(tmp_path: Path) -> None:
    text = starter_config("ABC")
    # "unset by default" lines show an example value, not a default: they stay commented
    settings_part = text.split("\n# Who signs", 1)[0]  # the [[people]] example stays commented
    uncommented = re.sub(r"^# (\w+ = (?!.*unset by default))", r"\1", settings_part, flags=re.M)
    profile = tmp_path / "certissuer.toml"
    profile.write_text(uncommented, encoding="utf-8")
    loaded = load_settings(profile, env={})
    default = Settings()
    starter_set = {"lab_code", "lab_name_vi", "lab_name_en", "lab_address_vi",
                   "lab_address_en", "lab_accreditation", "signing_pkcs12",
                   "signing_trust_roots", "token_key", "ledger_url"}  # fmt: skip
    for name in set(_names()) - starter_set:
        assert getattr(loaded, name) == getattr(default, name), name


def test_the_starter_says_what_a_setting_is_for() -> None:
    text = starter_config()
    assert "# PAdES baseline level: B-B, B-T, B-LT or B-LTA" in text
    assert '# level = "B-B"' in text
    # field names are spelled as the profile spells them: "[signing] cert", not `signing_cert`
    assert not re.search(r"`(lab|signing|token|ledger|web|verify|dcc)_\w+`", text)
    assert "with [signing] cert" in text


def test_config_show_names_the_source_of_each_value(tmp_path: Path) -> None:
    profile = tmp_path / "lab.toml"
    profile.write_text('[lab]\ncode = "Q1"\n[web]\nport = 8181\n', encoding="utf-8")
    r = runner.invoke(
        app,
        ["--config", str(profile), "config", "show", "--json"],
        env={"CERTISSUER_SIGNING_LEVEL": "B-T"},
    )
    assert r.exit_code == 0, r.stderr
    rows = {row["setting"]: row for row in json.loads(r.stdout)}
    assert rows["[lab] code"] == {"setting": "[lab] code", "value": "Q1", "source": str(profile)}
    assert rows["[web] port"]["value"] == 8181
    assert rows["[signing] level"] == {
        "setting": "[signing] level", "value": "B-T", "source": "$CERTISSUER_SIGNING_LEVEL",
    }  # fmt: skip
    assert rows["[numbering] copy"]["source"] == "default"
    assert rows["[ledger] url"]["source"].startswith("default, beside")
    assert len(rows) == len(_names())
    profile.write_text(
        profile.read_text(encoding="utf-8")
        + '\n[[people]]\nname = "Lê Hoàng Phúc"\nroles = ["head"]\npkcs12 = "k.p12"\n',
        encoding="utf-8",
    )
    r = runner.invoke(app, ["--config", str(profile), "config", "show", "--json"], env={})
    rows = {row["setting"]: row for row in json.loads(r.stdout)}
    assert rows["[[people]] Lê Hoàng Phúc"]["value"] == "head"
    r = runner.invoke(app, ["--config", str(profile), "config", "show"], env={})
    assert r.exit_code == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("[web] port"))
    assert "8181" in line and str(profile) in line


def test_init_writes_the_generated_starter(tmp_path: Path) -> None:
    target = tmp_path / "certissuer.toml"
    r = runner.invoke(app, ["init", str(target), "--lab-code", "DT9"])
    assert r.exit_code == 0
    assert target.read_text(encoding="utf-8") == starter_config("DT9")
