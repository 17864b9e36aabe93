"""Arrow fast path for RadVLM LLaVA JSON lists: the 1.1M-record case, at C speed where it counts.

Decoding every record into Python dicts (`json.load` or one `raw_decode` per record) costs as much
as all the rest of the conversion. Here the file is cut into ~2 MB blocks at record boundaries and
each block is parsed by pyarrow's C++ JSON reader (wrapped as `{"r": [ ...block... ]}`), on a
background thread so parsing overlaps the work on the previous block. Task inference and filters
run column-wise (the task once per distinct question: RadVLM questions come from templates), and
grounding rows are built column-wise by `fastgrounding`.

Correctness stays with the per-record path (`pipeline.Converter`):
- a block cut is only a guess (a `}` `,` `{` whose next key is not a conversation turn's); a wrong
  guess, a malformed record, a type surprise or invalid UTF-8 make the arrow parse fail, and that
  block is parsed exactly by `jsonstream` and converted record by record;
- within a parsed block, every record that is not a plain two-turn human/gpt conversation with an
  id and one image (or that `fastgrounding` cannot prove it handles identically) goes to the
  per-record path; rows are merged back in input order, so rows, their order and the drop reasons
  are the same either way. tests/unit/test_prep_fastpath.py checks that both paths agree.
"""

from __future__ import annotations

import io
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from radgrpo.data.answers import BRACKET_PATTERN
from radgrpo.prep.fastgrounding import grounding_rows
from radgrpo.prep.jsonstream import JsonStream, _Parser
from radgrpo.prep.rows import EXTRA_INFO
from radgrpo.prep.sources import radvlm_llava

BLOCK_BYTES = 2 << 20
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
RECORD = pa.struct([("id", pa.string()), ("image", pa.string()), ("images", pa.list_(pa.string())),
                    ("dataset", pa.string()), ("conversations", pa.list_(TURN))])
_WRAPPED = pa.schema([("r", pa.list_(RECORD))])
_CUT = re.compile(rb'\}\s*,\s*\{\s*"(?!from"|value")')
_SKIP = re.compile(rb"[\s,]*")
_USERS, _ASSISTANTS = ("human", "user"), ("gpt", "assistant")


def blocks(cfg, path: Path) -> Blocks | None:
    """Blocks of `path` for the fast path, or None when this input/config needs the general path."""
    if (cfg.source != "radvlm_llava" or cfg.format != "verl" or cfg.max_prompt_tokens is not None
            or cfg.images.mode != "path" or cfg.images.keep_first_k == 0
            or path.is_dir() or path.suffix.lower() != ".json"):
        return None
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    return Blocks(path, BLOCK_BYTES) if head.startswith(b"[") else None


class Blocks:
    """Iterate a JSON list as `(first_key, StructArray)` blocks, or `[(key, record), ...]` lists
    where the exact parser had to take over. `bytes_read` / `total_bytes` drive the progress bar."""

    def __init__(self, path: Path, block_bytes: int = BLOCK_BYTES):
        self.path = path
        self.block_bytes = block_bytes
        self.total_bytes = path.stat().st_size
        self.bytes_read = 0

    def __iter__(self) -> Iterator[Any]:
        """Blocks are produced on a thread (pyarrow parses without the GIL), two ahead at most."""
        out: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce():
            try:
                for item in self._produce():
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                out.put(None)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                out.put(exc)

        worker = threading.Thread(target=produce, name="radgrpo-prep-parse", daemon=True)
        worker.start()
        try:
            while (item := out.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                offset, block = item
                self.bytes_read = offset
                yield block
        finally:
            stop.set()
            worker.join()

    def _produce(self) -> Iterator[tuple[int, Any]]:
        key = 0
        with open(self.path, "rb") as fh:
            data, base, eof = b"", 0, False
            head = fh.read(self.block_bytes)
            start = head.index(b"[") + 1
            data, pos, eof = head, start, len(head) < self.block_bytes
            while True:
                while not eof and len(data) - pos < 2 * self.block_bytes:
                    more = fh.read(self.block_bytes)
                    eof = not more
                    data, base, pos = data[pos:] + more, base + pos, 0
                pos = _SKIP.match(data, pos).end()
                if data[pos:pos + 1] == b"]" or (eof and pos >= len(data)):
                    if pos >= len(data):  # the list never closes: let the exact parser say so
                        yield from self._exact(base + pos, key, self.total_bytes)
                    return
                cut = self._cut(data, pos, eof)
                table = _parse(data[pos:cut]) if cut else None
                if table is not None:
                    yield base + cut, (key, table)
                    key += len(table)
                    pos = cut
                    continue
                stop_at = base + (cut or min(len(data), pos + self.block_bytes))
                end = None
                for end, records in self._exact(base + pos, key, stop_at):
                    key += len(records)
                    yield end, records
                if end is None or end >= self.total_bytes:
                    return
                fh.seek(end)
                data, base, pos, eof = b"", end, 0, False

    def _cut(self, data: bytes, pos: int, eof: bool) -> int | None:
        """End (exclusive) of a block starting at pos: after the last record-looking boundary."""
        if eof and len(data) - pos <= self.block_bytes:
            close = data.rstrip().rfind(b"]")
            body = data[pos:close].rstrip() if close >= pos else b""
            return pos + len(body) if body.endswith(b"}") else None
        last = None
        for last in _CUT.finditer(data, pos, pos + self.block_bytes):
            pass
        return last.start() + 1 if last is not None else None

    def _exact(self, offset: int, key: int, stop_at: int) -> Iterator[tuple[int, list]]:
        """Records from `offset` parsed one by one, until past `stop_at` (or the list's end)."""
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            parser = _Parser(fh, JsonStream(self.path), base=offset)
            batch = []
            for item in parser.items(index=key):
                batch.append(item)
                if parser.offset >= stop_at:
                    break
                if len(batch) >= 2048:
                    yield parser.offset, batch
                    batch = []
            yield (parser.offset if parser.offset >= stop_at else self.total_bytes), batch


def _parse(region: bytes) -> pa.StructArray | None:
    """The records of a block, or None if it is not a clean list of LLaVA records."""
    try:
        body = b'{"r":[' + region + b"]}"
        table = pajson.read_json(
            io.BytesIO(body),
            read_options=pajson.ReadOptions(block_size=len(body) + 1, use_threads=False),
            parse_options=pajson.ParseOptions(explicit_schema=_WRAPPED, unexpected_field_behavior="ignore",
                                              newlines_in_values=True))
        records = table.column(0).chunk(0).flatten()
        records.validate(full=True)  # UTF-8 validity: invalid text goes to the exact path
        return records
    except (pa.ArrowInvalid, UnicodeDecodeError, IndexError):
        return None


def convert_block(conv, key0: int, records: pa.StructArray) -> None:
    """Convert one parsed block into rows of `conv`, in input order (see the module docstring)."""
    stats, opts = conv.stats, conv.cfg.source_options
    turns_list = records.field("conversations")
    offsets = np.asarray(turns_list.offsets)
    plain = ((np.diff(offsets) == 2) & _valid(turns_list) & _valid(records.field("id"))
             & _valid(records.field("image")))
    rows = np.flatnonzero(plain)
    froms, values = turns_list.values.field("from"), turns_list.values.field("value")
    first, second = pa.array(offsets[:-1][rows]), pa.array(offsets[:-1][rows] + 1)
    questions, answers = pc.take(values, first), pc.take(values, second)
    plain_turns = (_valid(questions) & _valid(answers) & _in(pc.take(froms, first), _USERS)
                   & _in(pc.take(froms, second), _ASSISTANTS))
    # the task of every plain record, as radvlm_llava.infer_task decides it: boxes in the answer
    # (RE2, same pattern), else the question's template (memoised, once per distinct question)
    encoded = pc.dictionary_encode(questions).combine_chunks() if isinstance(questions, pa.ChunkedArray) \
        else pc.dictionary_encode(questions)
    question_task = np.array([radvlm_llava.question_task(q or "") == opts.task
                              for q in encoded.dictionary.to_pylist()] or [False], dtype=bool)
    wanted = np.where(_true(pc.match_substring_regex(answers, BRACKET_PATTERN)), opts.task == "grounding",
                      question_task[np.asarray(encoded.indices.fill_null(0))])
    candidate = plain_turns & wanted
    other_task = plain_turns & ~wanted
    slow = np.ones(len(records), dtype=bool)
    slow[rows[plain_turns]] = False

    if opts.dataset_filter is None:
        stats.filtered_out("other_task", int(other_task.sum()))
    else:  # the dataset filter is checked first: attribute each unwanted record to the right one
        for rid, dataset in zip(pc.take(records.field("id"), rows[other_task]).to_pylist(),
                                pc.take(records.field("dataset"), rows[other_task]).to_pylist()):
            wanted = radvlm_llava.wanted_dataset(*_dataset(rid.strip(), dataset), opts.dataset_filter)
            stats.filtered_out("other_task" if wanted else "dataset_filter")

    if opts.task == "grounding":
        picked = rows[candidate]
        fast = grounding_rows(conv, key0 + picked, pc.filter(questions, pa.array(candidate)),
                              pc.filter(answers, pa.array(candidate)), pc.take(records.field("id"), picked),
                              pc.take(records.field("image"), picked), pc.take(records.field("dataset"), picked))
        slow[picked[fast.leftover]] = True
    else:
        slow[rows[candidate]] = True
        fast = None
    before = dict(conv.rows_per_split)
    conv.records([(key0 + i, records[i].as_py()) for i in np.flatnonzero(slow).tolist()])
    if fast is not None:
        _merge(conv, fast, before)


def _merge(conv, fast, before: dict[str, int]) -> None:
    """Interleave the vectorised rows with the per-record ones by input position, then number them."""
    for split in ("train", "val"):
        mine = fast.split == split
        table = fast.table if mine.all() else fast.table.filter(pa.array(mine))
        if len(conv.columns[split]):  # per-record rows: interleave by input position
            table = pa.concat_tables([table, conv.columns[split].table()])
            order = pc.sort_indices(pc.struct_field(table.column("extra_info").combine_chunks(), "source_index"))
            table = table.take(order)
        if not table.num_rows:
            continue
        extra = table.column("extra_info").combine_chunks()
        index = pa.array(np.arange(before[split], before[split] + table.num_rows, dtype=np.int64))
        children = [index if f.name == "index" else extra.field(f.name) for f in EXTRA_INFO]
        table = table.set_column(table.schema.get_field_index("extra_info"), "extra_info",
                                 pa.StructArray.from_arrays(children, fields=list(EXTRA_INFO)))
        conv.rows_per_split[split] = before[split] + table.num_rows
        conv.writer.add_table(table, split)


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid())


def _true(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.fill_null(False))


def _in(array: pa.Array, choices: tuple[str, ...]) -> np.ndarray:
    return _true(pc.is_in(array, pa.array(choices)))


def _dataset(rid: str, dataset: str | None) -> tuple[str, str]:
    """radvlm_llava.dataset_of for a record whose id is `rid` (already stripped); an empty id is
    record_id's "record-N", which has no "_" either."""
    return radvlm_llava.dataset_of({"dataset": dataset}, rid)
