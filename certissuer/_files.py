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

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "default_template_dir",
    "issued_length",
    "replacing",
    "temporary_name",
    "write_atomic",
]


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


_EOF = re.compile(rb"%%EOF(\r\n|\r|\n)?")


def issued_length(data: bytes, sha256_hex: str) -> int | None:
    """How many leading bytes of `data` are the file whose SHA-256 is `sha256_hex`.

    All of `data` when it is that file; the length of an earlier revision when `data` is that
    file extended by incremental updates (the head's approval signature, validation data, a
    document timestamp: what a PDF may gain after it is issued); None when no revision of
    `data` is that file. Only the bytes are compared: whether what was added is allowed is the
    verifier's question (`certissuer verify`), not this one's.
    """
    if hashlib.sha256(data).hexdigest() == sha256_hex:
        return len(data)
    for match in _EOF.finditer(data):
        for end in {match.start() + 5, match.end()}:
            if hashlib.sha256(data[:end]).hexdigest() == sha256_hex:
                return end
    return None
