"""Read certificates from a JSON file, one record at a time, in bounded memory.

A file holds one certificate object or a list of them; numbers are read as `Decimal`, never
float; a syntax error names its line and column in the whole file.

>>> for item in json_records(Path("batch.json"), MAX_INPUT_BYTES):  # doctest: +SKIP
...     print(item.row)
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

from certissuer._tables import open_input, too_large, utf8_error
from certissuer.errors import InputError
from certissuer.intake.records import Record, Rejected
from certissuer.intake.validate import Place, duplicate, judge, show

__all__ = ["json_records"]


_CHUNK: Final = 1 << 16
"""Bytes read at a time from a JSON file: a list of certificates is decoded one record at a time."""
_JSON_SPACE: Final = re.compile(r"[ \t\n\r]*")
"""What the json module skips between tokens."""
# NOTE: Decimal for every non-integer number (and NaN/Infinity), so no float ever reaches a
# measured value: 0.1 stays exactly 0.1.
_DECODER: Final = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal)
_NUMBER_TAIL: Final = re.compile(r"[0-9+\-.eE]*")
"""Characters that may go on a number."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


class _JsonText:
    """The text of a JSON file, decoded from UTF-8 one chunk at a time.

    Only the part not yet parsed is held (a chunk, or the record being decoded), so a list of
    10,000 certificates takes no more memory than a list of 10. A record that does not decode
    may only be cut by the end of the chunk, so more is read and it is tried again: for a broken
    record that means the rest of the file (at most `max_bytes`) before the error is raised.
    Positions in messages are those of the whole file: the line and column ``json.loads`` names.
    """

    def __init__(self, f: IO[bytes], where: str, max_bytes: int) -> None:
        self.f, self.where, self.max_bytes = f, where, max_bytes
        self.text = ""
        """Decoded text from the first character not yet parsed."""
        self.pos = 0
        """Index in `text` of the next character to parse."""
        self.eof = False
        self._pending = b""  # the start of a UTF-8 sequence cut by the end of a chunk
        self._read = 0  # bytes read from the file
        self._newlines = 0  # b"\n" in the bytes decoded so far, for UTF-8 errors
        self._line = 1  # line of text[0] in the file
        self._column = 0  # characters before text[0] on its line

    def more(self) -> bool:
        """Read and decode one more chunk (at least as much as is held); False at the end."""
        if self.eof:
            return False
        head = self.text[: self.pos]
        if "\n" in head:
            self._line += head.count("\n")
            self._column = len(head) - head.rfind("\n") - 1
        else:
            self._column += len(head)
        self.text, self.pos = self.text[self.pos :], 0
        chunk = self.f.read(max(_CHUNK, len(self.text)))
        start = self._read - len(self._pending)  # file offset of data[0]
        self._read += len(chunk)
        if self._read > self.max_bytes:  # the file grew after the size check
            raise too_large(self.where, self._read, self.max_bytes)
        data = self._pending + chunk
        if start == 0 and data.startswith(codecs.BOM_UTF8):
            data, start = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        try:
            decoded, used = codecs.utf_8_decode(data, "strict", not chunk)
        except UnicodeDecodeError as exc:
            line = self._newlines + data.count(b"\n", 0, exc.start) + 1
            raise utf8_error(
                self.where, line, start + exc.start, data[exc.start], "save the file as UTF-8"
            ) from exc
        self._newlines += data.count(b"\n", 0, used)
        self._pending = data[used:]
        self.text += decoded
        self.eof = not chunk
        return True

    def peek(self) -> str:
        """Skip whitespace; the next character, or '' at the end of the file."""
        while True:
            match = _JSON_SPACE.match(self.text, self.pos)
            assert match is not None  # the pattern matches the empty string
            self.pos = match.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def value(self) -> Any:
        """Decode the JSON value that starts at the current position."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self.more():  # perhaps only cut off by the end of the chunk
                    continue
                raise self.error(exc.msg, exc.pos) from exc
            except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
                raise InputError(self.where, f"not valid JSON: {exc}") from exc
            # A number cut by the end of the chunk ("1." of "1.5") still decodes: make sure a
            # character that cannot be part of it follows.
            if _is_number(value) and self._to_the_end(_NUMBER_TAIL, end) and self.more():
                continue
            self.pos = end
            return value

    def _to_the_end(self, pattern: re.Pattern[str], pos: int) -> bool:
        """Whether `pattern` matches all of `text` from `pos`."""
        match = pattern.match(self.text, pos)
        return match is not None and match.end() == len(self.text)

    def error(self, message: str, pos: int) -> InputError:
        """The `InputError` for a syntax error at `pos` in `text`, located in the whole file."""
        line = self._line + self.text.count("\n", 0, pos)
        last = self.text.rfind("\n", 0, pos)
        column = pos - last if last >= 0 else self._column + pos + 1
        return InputError(
            self.where,
            f"not valid JSON: {message.lower()} at line {line}, column {column}",
            hint="look for a missing comma, quote or bracket at or just before that place",
        )


def json_records(path: Path, max_bytes: int) -> Iterator[Record | Rejected]:
    """The certificates of a JSON file: one object, or a list read one record at a time."""
    where = str(path)
    with open_input(path) as f:
        text = _JsonText(f, where, max_bytes)
        try:
            yield from _json_items(text, where)
        except OSError as exc:
            raise InputError(path, f"cannot be read: {exc.strerror}") from exc


def _json_items(text: _JsonText, where: str) -> Iterator[Record | Rejected]:
    first = text.peek()
    if not first:
        raise InputError(where, "the file is empty")
    if first != "[":  # one certificate object (or something else, refused below)
        doc = text.value()
        if text.peek():
            raise text.error("Extra data", text.pos)
        if not isinstance(doc, dict):
            raise InputError(
                where, f"expected a certificate object or a list of them, got {show(doc)}"
            )
        yield _json_record(where, 1, doc, {})
        return
    text.pos += 1
    if text.peek() == "]":
        text.pos += 1
        if text.peek():
            raise text.error("Extra data", text.pos)
        raise InputError(where, "no certificates: the list is empty")
    seen: dict[str, int] = {}  # ref -> record number: one short entry per certificate
    number = 0
    while True:
        item = text.value()
        number += 1
        yield _json_record(where, number, item, seen)
        del item
        after = text.peek()
        if after == "]":
            text.pos += 1
            break
        if after != ",":
            raise text.error("Expecting ',' delimiter", text.pos)
        text.pos += 1
        text.peek()
    if text.peek():
        raise text.error("Extra data", text.pos)


def _json_record(where: str, number: int, item: Any, seen: dict[str, int]) -> Record | Rejected:
    if not isinstance(item, dict):
        problem = f"expected a certificate object {{...}}, got {show(item)}"
        return Rejected(where, number, None, (InputError(where, problem, row=number),))
    ref = item.get("ref")
    ref = (ref.strip() or None) if isinstance(ref, str) else None
    errors = duplicate(where, number, ref, seen)
    return judge(where, item, Place(where, number, ref), errors)
