"""Files written whole or not at all, and where the shipped templates are.

Every file certissuer writes for a person (certificates, reports, exports, error reports,
registers) goes to a temporary file beside the target, is flushed to disk and renamed over
the target, so a crash or a full disk leaves the old file or none, never half of one. The
temporary name is ``.<name>.<pid>.tmp``: `issue` removes those of dead processes.

>>> write_atomic(Path("out/HC-2026-000001.pdf"), pdf)  # doctest: +SKIP
>>> with replacing(Path("report.xlsx")) as tmp:  # doctest: +SKIP
...     workbook.save(tmp)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["default_template_dir", "replacing", "temporary_name", "write_atomic"]


def temporary_name(path: Path) -> Path:
    """The temporary file that stands in for `path` while this process writes it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s new content to; when the block ends without
    an error, the file is flushed to disk and renamed over `path` (and the folder's entry
    flushed too), otherwise it is removed. The folder is created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (see `replacing`)."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def default_template_dir() -> Path:
    """Return the folder of the templates shipped with certissuer.

    A wheel carries them as ``certissuer/templates``; in a source checkout they are the
    repository's top-level ``templates/`` folder.
    """
    package = Path(__file__).resolve().parent
    bundled = package / "templates"
    if bundled.is_dir():
        return bundled
    return package.parent / "templates"
