"""certissuer._files: a file is written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from certissuer._files import replacing, temporary_name, write_atomic


def test_write_atomic_writes_and_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "HC-2026-000001.pdf"
    write_atomic(target, b"%PDF-1.7 whole")
    assert target.read_bytes() == b"%PDF-1.7 whole"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.xlsx"
    target.write_bytes(b"old report")
    with pytest.raises(OSError, match="disk full"), replacing(target) as tmp:
        tmp.write_bytes(b"half of the new rep")
        raise OSError("disk full")
    assert target.read_bytes() == b"old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xlsx"]


def test_temporary_name_is_hidden_beside_the_target_and_names_the_process() -> None:
    tmp = temporary_name(Path("/out/KD-2026-000001.pdf"))
    # issue._remove_stale_temporaries finds these by ".*.pdf.*.tmp" and the pid
    assert tmp == Path(f"/out/.KD-2026-000001.pdf.{os.getpid()}.tmp")
    assert tmp.match(".*.pdf.*.tmp")
