"""The web layer runs no SQL: it asks `certissuer.verify` and the `Ledger` for what it shows.

Each module under ``certissuer/web`` is parsed (not imported) and must not import a database
library, call an execution method, reach for the ledger's engine or spell an SQL statement.
The checker is tried on a module that does all of these first, so a checker that finds
nothing cannot pass by accident.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parent.parent / "certissuer" / "web"

_DATABASE_LIBRARIES = {"sqlalchemy", "sqlmodel", "sqlite3", "psycopg", "psycopg2", "alembic"}
_EXECUTION_CALLS = {
    "execute",
    "executemany",
    "executescript",
    "exec",
    "exec_driver_sql",
    "raw_connection",
    "session",
    "connect",
}
"""Method names that run SQL, or open what runs it (a session or a connection)."""
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|DROP|ALTER|BEGIN|SET)\s")


def sql_uses(source: str, name: str) -> list[str]:
    """Each use of a database in `source` (a module called `name`), as "name:line: what"."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        found += [
            f"{where}: imports {m}" for m in modules if m.split(".")[0] in _DATABASE_LIBRARIES
        ]
        if isinstance(node, ast.Call):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called in _EXECUTION_CALLS:
                found.append(f"{where}: calls {called}()")
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append(f"{where}: uses .engine")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _SQL.match(node.value)
        ):
            found.append(f"{where}: SQL {node.value.split()[0]}")
    return found


def test_the_checker_finds_each_kind_of_sql_use() -> None:
    bad = """
import sqlite3
from sqlalchemy import text
from sqlmodel import select

def count(ledger, number):
    with ledger.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM ledger_event")
    raw = ledger.engine.raw_connection()
    raw.cursor().execute("PRAGMA query_only=1")
    with ledger.session() as s:
        return s.exec(select(1))
"""
    found = "\n".join(sql_uses(bad, "bad.py"))
    for what in (
        "imports sqlite3",
        "imports sqlalchemy",
        "imports sqlmodel",
        "uses .engine",
        "calls connect()",
        "calls exec_driver_sql()",
        "calls raw_connection()",
        "calls execute()",
        "calls session()",
        "calls exec()",
        "SQL SELECT",
        "SQL PRAGMA",
    ):
        assert what in found, what


def _web_modules() -> list[Path]:
    modules = sorted(WEB.rglob("*.py"))
    assert len(modules) >= 8, "the web package moved"
    return modules


@pytest.mark.parametrize("path", _web_modules(), ids=lambda p: p.name)
def test_web_module_runs_no_sql(path: Path) -> None:
    assert sql_uses(path.read_text(encoding="utf-8"), path.name) == []


def test_the_page_has_no_ledger_query_of_its_own() -> None:
    assert not (WEB / "ledger_reads.py").exists(), "its query is `Ledger.event_count`"


@pytest.mark.parametrize(
    ("verdict", "tone", "mark"),
    [
        ("valid", "ok", "✓"),
        ("expired", "warn", "!"),
        ("time_not_proven", "unknown", "?"),
        ("altered", "bad", "✗"),
    ],
)
def test_the_page_never_shows_an_unprovable_signing_time_as_a_forgery(
    verdict: str, tone: str, mark: str
) -> None:
    # An intact B-B signature judged after its signer's certificate expired is not proven,
    # and not forged either: its own colour and mark, and advice that says why.
    from certissuer.config import Settings
    from certissuer.verify.verdict import Report, Verdict
    from certissuer.web.views import Lab, Pages

    pages = Pages(Settings(), Lab("Phòng", "Lab", "verify.test.invalid", ()))
    html = pages.verdict(Report(Verdict(verdict)), None, root=".")
    assert f'class="verdict {tone}"' in html
    assert f'<p class="mark" aria-hidden="true">{mark}</p>' in html
    advice = "không có dấu thời gian" in html and "has no timestamp" in html
    assert advice is (verdict == "time_not_proven")
    assert ("Đừng tin vào giấy chứng nhận này" in html) is (tone == "bad")
