"""Arrow fast path for RadVLM LLaVA JSON lists: the 1.1M-record case, at C speed where it counts.

Decoding every record into Python dicts (`json.load` or one `raw_decode` per record) costs as much
as all the rest of the conversion. Here the file is cut into ~8 MB blocks at record boundaries and
each block is parsed by pyarrow's C++ JSON reader (wrapped as `{"r": [ ...block... ]}`), on a
background thread so parsing overlaps the Python work of the previous block. Only the columns a
row needs are turned into Python strings; prompts, image checks and task inference are memoised on
the (template-generated, heavily repeated) questions and image paths.

Correctness stays with the per-record path (`pipeline.Converter`):
- a block cut is only a guess (a `}` `,` `{` whose next key is not a conversation turn's); a wrong
  guess, a malformed record, a type surprise or invalid UTF-8 make the arrow parse fail, and that
  block is parsed exactly by `jsonstream` and converted record by record;
- within a parsed block, every record that is not a plain two-turn human/gpt conversation with an
  id and one image goes to the per-record path, in input order, so row order and drop reasons are
  the same either way. tests/unit/test_prep_fastpath.py checks that both paths agree.
"""

from __future__ import annotations

import io
import queue
import re
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from radgrpo.prep.boxes import BRACKET_PATTERN, extract_boxes, says_no_finding
from radgrpo.prep.errors import Drop
from radgrpo.prep.jsonstream import JsonStream, _Parser
from radgrpo.prep.sample import Sample, require_text, split_image_tags
from radgrpo.prep.sources import radvlm_llava
from radgrpo.prep.rows import grounding_truth

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
    return Blocks(path) if head.startswith(b"[") else None


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
    question_task = np.array([radvlm_llava._question_task(q or "") == opts.task
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
            stats.filtered_out("dataset_filter" if _dataset(rid.strip(), dataset) not in opts.dataset_filter
                               else "other_task")

    picked = rows[candidate]
    fast = zip(picked.tolist(), pc.filter(questions, candidate).to_pylist(),
               pc.filter(answers, candidate).to_pylist(), pc.take(records.field("id"), picked).to_pylist(),
               pc.take(records.field("image"), picked).to_pylist(),
               pc.take(records.field("dataset"), picked).to_pylist())
    plan = []  # (key, raw record) for the per-record path, (key, fields) for the fast one; input order
    slow_rows = iter(np.flatnonzero(slow).tolist() + [len(records)])
    next_slow = next(slow_rows)
    for i, question, answer, rid, image, dataset in fast:
        while next_slow < i:
            plan.append((key0 + next_slow, records[next_slow].as_py()))
            next_slow = next(slow_rows)
        rid = rid.strip() or f"record-{key0 + i}"
        dataset = _dataset(rid, dataset)
        if opts.dataset_filter is not None and dataset not in opts.dataset_filter:
            stats.filtered_out("dataset_filter")
            continue
        plan.append((key0 + i, (rid, dataset, question, answer, image.strip())))
    while next_slow < len(records):
        plan.append((key0 + next_slow, records[next_slow].as_py()))
        next_slow = next(slow_rows)
    conv.resolver.prefetch([p[4] for _, p in plan if isinstance(p, tuple)])
    emit = _GroundingRows.of(conv).emit if opts.task == "grounding" else None
    for key, item in plan:
        if isinstance(item, tuple) and emit is not None and emit(key, *item):
            continue
        found = conv.sample(key, item if isinstance(item, dict) else records[key - key0].as_py())
        if found is not None:
            conv.emit(*found)


class _GroundingRows:
    """Rows of plain one-image grounding records, written straight into the converter's columns.

    It does what `radvlm_llava.to_sample` + `Converter.emit` do for such a record, with the
    per-question work (tag stripping, prompt rendering) memoised. Anything unusual - an empty text,
    a bad box, a bad image, a long or base64 image string - returns False, and the caller sends the
    record down the per-record path, which produces the same row or the exact drop reason.
    """

    def __init__(self, conv):
        self.conv = conv
        self.prompts: dict[str, tuple | None] = {}

    @classmethod
    def of(cls, conv) -> _GroundingRows:
        if getattr(conv, "_grounding_rows", None) is None:
            conv._grounding_rows = cls(conv)
        return conv._grounding_rows

    def prompt(self, raw: str) -> tuple | None:
        """(question, messages, characters) for a raw question, or None if it is not plain."""
        if raw not in self.prompts:
            if len(self.prompts) >= 1 << 16:
                self.prompts.clear()
            try:
                question = _question(require_text(raw, "empty_question", "turn 0"))
            except Drop:
                self.prompts[raw] = None
            else:
                probe = Sample(id="", dataset="", task="grounding", question=question, answer="", images=[])
                messages = self.conv.cfg.prompt.render(probe, 1)
                self.prompts[raw] = (question, messages, sum(len(m["content"]) for m in messages))
        return self.prompts[raw]

    def emit(self, key: int, rid: str, dataset: str, raw_question: str, raw_answer: str, image: str) -> bool:
        conv = self.conv
        prompt = self.prompt(raw_question)
        answer = raw_answer.strip()
        if prompt is None or not answer or not image or len(image) >= 256:
            return False
        try:
            images = conv.resolver.entries([image])
            boxes = extract_boxes(answer)
        except Drop:
            return False
        if not boxes and not says_no_finding(answer):
            return False
        question, messages, chars = prompt
        stats = conv.stats
        if conv.cfg.max_prompt_chars is not None and chars > conv.cfg.max_prompt_chars:
            stats.filtered_out("prompt_too_long")
            return True
        split = conv.split_of(rid)
        answer_type = "no_finding" if not boxes else "single_box" if len(boxes) == 1 else "multi_box"
        conv.columns[split].add(dataset, messages, images, "grounding", grounding_truth(boxes),
                                (rid, split, conv.next_index(split), key, "grounding", dataset, question,
                                 answer, answer_type, "", 1, len(boxes)))
        stats.keep(split, dataset, answer_type, chars, 1, boxes)
        return True


@lru_cache(maxsize=1 << 16)
def _question(text: str) -> str:
    """The question of a one-image record without its tag (memoised: questions repeat)."""
    question = split_image_tags(text, 1)
    if not question:
        raise Drop("empty_question", "the question is only <image> tags")
    return question


def _valid(array: pa.Array) -> np.ndarray:
    return np.asarray(array.is_valid())


def _true(mask: pa.Array) -> np.ndarray:
    return np.asarray(mask.fill_null(False))


def _in(array: pa.Array, choices: tuple[str, ...]) -> np.ndarray:
    return _true(pc.is_in(array, pa.array(choices)))


def _dataset(rid: str, dataset: str | None) -> str:
    """radvlm_llava.dataset_of for a record whose id is `rid` (already stripped)."""
    if dataset and dataset.strip():
        return dataset.strip()
    if not rid:
        return "unknown"  # record_id's "record-N" has no "_", so it maps to "unknown" too
    return rid.rsplit("_", 1)[0] if "_" in rid else "unknown"
