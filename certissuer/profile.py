"""The lab profile described by the settings model itself: the starter file and ``config show``.

`Settings` declares every setting with its type, default and a docstring. The starter profile
that ``certissuer init`` writes is generated from those declarations, so it lists every key
(each with one line of help and its default) and cannot drift from what the loader accepts.
``certissuer config show`` prints the effective value of each setting and where it came from:
the default, the profile (file and section), or a ``CERTISSUER_*`` environment variable.

>>> print(starter_profile("DT01"))  # doctest: +SKIP
>>> for row in effective_settings(Path("certissuer.toml"), os.environ): ...  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import re
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from certissuer import config
from certissuer.config import Settings, find_config, load_settings

__all__ = [
    "EffectiveSetting",
    "effective_settings",
    "setting_help",
    "starter_config",
    "starter_profile",
]

_STARTER: dict[str, Any] = {
    "lab_name_vi": "Trung tâm Kỹ thuật Tiêu chuẩn Đo lường Chất lượng",
    "lab_name_en": "Technical Centre for Standards, Metrology and Quality",
    "lab_address_vi": "Số 1, đường Ví Dụ, phường 1, Đồng Tháp",
    "lab_address_en": "No. 1, Example Street, Ward 1, Dong Thap",
    "lab_accreditation": "VILAS 000",
    "signing_pkcs12": "keys/signer.p12",
    "signing_trust_roots": ["keys/ca.pem"],
    "token_key": "keys/token-key.pem",
    "ledger_url": config.DEFAULT_LEDGER_URL,
}
"""Settings the starter profile sets (the rest are listed commented out, at their defaults);
the lab code comes from ``certissuer init --lab-code``."""

_HEADER = """\
# certissuer lab profile, written by 'certissuer init'. Edit it; 'certissuer config show' prints
# what is in effect and where each value comes from.
# Paths are relative to this file (the ledger's SQLite file too). Every key can be overridden
# by an environment variable: [ledger] url -> CERTISSUER_LEDGER_URL.
# A line starting with '# key =' shows a setting at its default: remove the '# ' to change it.
"""


@functools.cache
def setting_help() -> dict[str, str]:
    """Each setting's docstring from `Settings` (empty when it has none), as one paragraph."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(Settings)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    helps: dict[str, str] = {}
    for node, after in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = ""
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            text = " ".join(after.value.value.split())
        helps[node.target.id] = text
    names = set(helps)
    # `signing_cert` in a docstring is ``[signing] cert`` in the profile a lab edits.
    return {
        name: re.sub(
            r"`(\w+)`",
            lambda m: (
                f"[{m[1].split('_', 1)[0]}] {m[1].split('_', 1)[1]}" if m[1] in names else m[1]
            ),
            text,
        )
        for name, text in helps.items()
    }


def _toml(value: Any) -> str:
    """`value` as a TOML value (strings quoted as TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return json.dumps(str(value.value), ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if value is None:
        return '""'
    return json.dumps(str(value), ensure_ascii=False)


def _is_path(name: str) -> bool:
    return "Path" in str(dataclasses.fields(Settings)[_index(name)].type)


def _index(name: str) -> int:
    return [f.name for f in dataclasses.fields(Settings)].index(name)


def _defaults() -> dict[str, Any]:
    # ``[section] key`` settings; ``people`` ([[people]]) is a list of tables, shown apart.
    return {
        f.name: f.default
        for f in dataclasses.fields(Settings)
        if "_" in f.name and f.default is not dataclasses.MISSING
    }


def starter_profile(lab_code: str = "LAB") -> str:
    """The starter lab profile: every setting of `Settings`, by section, with its help."""
    starter = {**_STARTER, "lab_code": lab_code}
    helps = setting_help()
    lines = [_HEADER.rstrip("\n")]
    sections: dict[str, list[tuple[str, Any]]] = {}
    for name, default in _defaults().items():
        sections.setdefault(name.split("_", 1)[0], []).append((name, default))
    for section, fields in sections.items():
        lines += ["", f"[{section}]"]
        for name, default in fields:
            _describe(lines, name, default, starter, helps)
    lines.append(_PEOPLE.rstrip("\n"))
    return "\n".join(lines) + "\n"


_PEOPLE = """
# Who signs, each with their own key; the key certificate's CN must be the printed name.
# Without an entry, the [signing] key signs for the person its certificate names.
# [[people]]
# name = "Phạm Minh Tuấn"
# roles = ["verifier"]           # verifier | head | signatory
# pkcs12 = "keys/pham-minh-tuan.p12"
# [[people]]
# name = "Lê Hoàng Phúc"
# roles = ["head", "signatory"]
# pkcs11_uri = "pkcs11:token=Lab%20token;object=phuc?module-path=/usr/lib/libvendor.so"
"""


def _describe(
    lines: list[str], name: str, default: Any, starter: dict[str, Any], helps: dict[str, str]
) -> None:
    key = name.split("_", 1)[1]
    lines.extend(f"# {text}" for text in textwrap.wrap(helps.get(name, ""), 94))
    if name in starter:
        lines.append(f"{key} = {_toml(starter[name])}")
    elif default is None and not _is_path(name):
        lines.append(f"# {key} = true   (unset by default)")
    else:
        lines.append(f"# {key} = {_toml(default)}")


@dataclass(frozen=True, slots=True)
class EffectiveSetting:
    """One setting as it is in effect."""

    name: str
    """As the profile spells it: ``[signing] level``."""
    value: Any
    source: str
    """``default``, ``<profile path>`` or ``$CERTISSUER_…``."""


def effective_settings(path: Path | None, env: Mapping[str, str]) -> list[EffectiveSetting]:
    """Every setting's effective value (loaded as certissuer loads it) and where it came from.

    Raises `ConfigError` for a profile that does not load."""
    settings = load_settings(path, env)
    found = find_config(path, env)
    in_file: set[str] = set()
    if found is not None:
        raw = tomllib.loads(found.read_text(encoding="utf-8"))
        for section, table in raw.items():
            if isinstance(table, dict):
                in_file |= {f"{section}_{k.replace('-', '_')}" for k in table}
    rows = []
    for name in _defaults():
        part, key = name.split("_", 1)
        var = f"CERTISSUER_{name.upper()}"
        if var in env:
            source = f"${var}"
        elif name in in_file:
            source = str(found)
        elif name == "ledger_url" and found is not None:
            source = f"default, beside {found}"
        else:
            source = "default"
        value = getattr(settings, name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = [str(v) for v in value]
        elif isinstance(value, Path):
            value = str(value)
        rows.append(EffectiveSetting(f"[{part}] {key}", value, source))
    for person in settings.people:
        roles = ", ".join(r.value for r in person.roles)
        rows.append(EffectiveSetting(f"[[people]] {person.name}", roles, str(found)))
    return rows


starter_config = starter_profile
"""The name ``certissuer init`` and older code use for `starter_profile`."""
