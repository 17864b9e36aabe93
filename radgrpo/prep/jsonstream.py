"""Stream the records of a large JSON file without loading it.

The RadVLM instruction file is one JSON list of 1.1M records; `json.load` holds all of it as Python
objects (several GB). Here the file is read in chunks and each top-level element is decoded on its
own by the C scanner behind `json.JSONDecoder.raw_decode`, so memory is bounded by the chunk size and
the largest record, and speed stays close to `json.load`.

Three layouts are accepted: a list of records (`[{...}, ...]`, RadVLM/LLaVA, CheXPO), a dict of
id -> record (`{"id": {...}, ...}`, seed 004's MedGemma JSON), and JSON Lines (`*.jsonl`).

A broken element does not stop the stream: it is yielded as a `Drop("invalid_json")` and parsing
resumes after it, found by a bracket- and string-aware scan; a file that ends inside a record yields
`Drop("truncated_input")`. Bytes that are not UTF-8 decode to lone surrogates (surrogateescape), which
the record checks later count as `bad_unicode` instead of failing here.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radgrpo.prep.errors import Drop

_WS = re.compile(r"[ \t\n\r]*")
_INTERESTING = re.compile(r'["\[\]{},]')
_IN_STRING = re.compile(r'["\\]')
_DECODE = json.JSONDecoder().raw_decode


class JsonStream:
    """Iterate `(key, record_or_Drop)` over a JSON file; `bytes_read` tracks progress.

    `key` is the element's position for lists and JSONL, the dict key for dict layouts.
    """

    def __init__(self, path: str | Path, chunk_size: int = 1 << 20):
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.bytes_read = 0
        self.total_bytes = self.path.stat().st_size

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        with open(self.path, "rb") as fh:
            if self.path.suffix == ".jsonl":
                yield from self._lines(fh)
            else:
                yield from _Parser(fh, self).elements()

    def _read(self, fh, size: int) -> bytes:
        data = fh.read(size)
        self.bytes_read += len(data)
        return data

    def _lines(self, fh) -> Iterator[tuple[int, Any]]:
        index = 0
        pending = b""
        while True:
            data = self._read(fh, self.chunk_size)
            lines = (pending + data).split(b"\n")
            pending = lines.pop() if data else b""
            for raw in lines:
                text = raw.decode("utf-8", "surrogateescape").strip()
                if not text:
                    continue
                try:
                    yield index, json.loads(text)
                except ValueError as exc:
                    yield index, Drop("invalid_json", str(exc))
                index += 1
            if not data:
                return


class _Parser:
    """The chunked element parser behind `JsonStream` for list and dict layouts."""

    def __init__(self, fh, stream: JsonStream, base: int = 0):
        self.fh = fh
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.buf = ""
        self.pos = 0
        self.base = base  # file offset of buf[0]
        self.eof = False
        self.sep = ""  # the text between two elements, e.g. ",\n    {", learnt from the input

    @property
    def offset(self) -> int:
        """File offset (bytes) of the parse position."""
        return self.base + len(self.buf[: self.pos].encode("utf-8", "surrogateescape"))

    def _more(self) -> bool:
        """Append one chunk to the buffer, dropping what was consumed; False at end of file."""
        if self.eof:
            return False
        self.base = self.offset
        data = self.stream._read(self.fh, self.stream.chunk_size)
        if not data:
            self.eof = True
            self.buf = self.buf[self.pos:] + self.decoder.decode(b"", final=True)
        else:
            self.buf = self.buf[self.pos:] + self.decoder.decode(data)
        self.pos = 0
        return True

    def _skip_ws(self) -> str:
        """Advance past whitespace; return the next character ('' at end of file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def _value(self) -> Any:
        """Decode one JSON value at pos, reading more input while it may be incomplete."""
        while True:
            try:
                value, end = _DECODE(self.buf, self.pos)
            except json.JSONDecodeError:
                if _element_end(self.buf, self.pos) is None and self._more():
                    continue  # the element runs past the buffer: not broken yet
                raise
            if end + 32 > len(self.buf) and not isinstance(value, (dict, list, str)) and self._more():
                continue  # a number cut by the chunk boundary ("0." of "0.25") may continue
            self.pos = end
            return value

    def _resync(self) -> bool:
        """Skip the broken element at pos; False if the file ends inside it (truncated).

        The element's end is found by matching brackets; when they do not match (a record with a
        stray or missing bracket), the next element is found by the separator seen between the
        previous two elements (e.g. ",\n    {"), which machine-written files keep constant.
        """
        while True:
            end = _element_end(self.buf, self.pos)
            if end is not None and end >= 0:
                self.pos = end
                return True
            if end == -1 and self.sep:
                found = self.buf.find(self.sep, self.pos + 1)
                if found >= 0:
                    self.pos = found
                    return True
            if not self._more():
                self.pos = len(self.buf)
                return False

    def elements(self) -> Iterator[tuple[Any, Any]]:
        first = self._skip_ws()
        if first not in ("[", "{"):
            yield 0, Drop("invalid_json", "input is neither a JSON list nor a JSON object")
            return
        self.pos += 1
        yield from self.items(is_dict=first == "{")

    def items(self, is_dict: bool = False, index: int = 0) -> Iterator[tuple[Any, Any]]:
        """The elements after the opening bracket (or after a previous element's end)."""
        close = "}" if is_dict else "]"
        while True:
            ch = self._skip_ws()
            if ch == close:
                return
            if ch == "":
                yield index, Drop("truncated_input", "the input ends before the closing bracket")
                return
            if ch == ",":  # an empty slot, e.g. after a skipped broken element
                self.pos += 1
                continue
            key: Any = index
            try:
                if is_dict:
                    key = self._value()
                    if self._skip_ws() != ":" or not isinstance(key, str):
                        raise json.JSONDecodeError("expected a string key and ':'", self.buf, self.pos)
                    self.pos += 1
                    self._skip_ws()
                item = self._value()
            except json.JSONDecodeError as exc:
                where = exc.msg
                if not self._resync():
                    yield key, Drop("truncated_input", f"the input ends inside record {key!r}")
                    return
                yield key, Drop("invalid_json", where)
                index += 1
                continue
            yield key, item
            index += 1
            after = self._skip_ws()
            if after == ",":
                if not self.sep:  # learn the separator: ',' + whitespace + the next element's first char
                    while (end := _WS.match(self.buf, self.pos + 1).end()) >= len(self.buf) and self._more():
                        pass
                    self.sep = self.buf[self.pos: end + 1]
                self.pos += 1
            elif after not in (close, ""):
                # garbage between elements: skip it as one broken element
                if not self._resync():
                    yield index, Drop("truncated_input", "the input ends inside a record")
                    return
                yield index, Drop("invalid_json", "unexpected text between records")
                index += 1


def _element_end(buf: str, start: int) -> int | None:
    """Index of the ',' or closing bracket that ends the element starting at `start`.

    Tracks strings and matched brackets only, so it also finds the end of an element that is not
    valid JSON. None means the buffer ends first; -1 means the brackets do not match.
    """
    stack = []
    i = start
    in_string = False
    while True:
        m = (_IN_STRING if in_string else _INTERESTING).search(buf, i)
        if m is None:
            return None
        ch = m.group()
        i = m.end()
        if in_string:
            if ch == "\\":
                i += 1
                if i > len(buf):
                    return None
            else:
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack:
                return i - 1
            if (stack.pop() == "[") != (ch == "]"):
                return -1
        elif not stack:  # ','
            return i - 1
