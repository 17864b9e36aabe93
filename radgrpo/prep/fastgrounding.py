"""Vectorised rows for plain RadVLM grounding records (the bulk of a 1.1M-record conversion).

`fastpath` hands over the records of a block that are plain two-turn grounding conversations. Here
their rows are computed column-wise with arrow compute: text trimming, dataset names, boxes (split
on "[", one anchored RE2 pattern per piece, parsed to float64 in C), ground-truth JSON strings
joined from the box text, prompts and image entries looked up once per distinct question and image.

Only records for which this is provably the same as the per-record path stay here: ASCII ids,
datasets, answers and image paths (so trimming `_TRIM` equals Python's `str.strip`), boxes
whose numbers are written as Python writes floats (so the JSON text equals `repr`-based
`encode_ground_truth`), a known-good image and prompt. Every other record is returned to the
caller for the per-record path, which produces its row or its exact drop reason. The equivalence
is tested in tests/unit/test_prep_fastpath.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from radgrpo.data.answers import COORD, NUMBER, WS, says_no_finding
from radgrpo.prep.errors import Drop
from radgrpo.prep.rows import EXTRA_INFO
from radgrpo.prep.sample import require_text, split_image_tags
from radgrpo.prep.sources.radvlm_llava import SPLIT_SUFFIX

# what Python's str.strip() removes from an ASCII string (its whitespace below 0x80)
_TRIM = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_ANY_BOX = rf"^{WS}*{COORD}(?:{WS}*,{WS}*{COORD})*{WS}*\]"
_BOX = (rf"^{WS}*(?P<x1>{NUMBER}){WS}*,{WS}*(?P<y1>{NUMBER}){WS}*,{WS}*(?P<x2>{NUMBER}){WS}*,"
        rf"{WS}*(?P<y2>{NUMBER}){WS}*\]")
# numbers that `repr(float(s))` writes back unchanged, in [0, 1]: no trailing zero, not below 1e-4
# (where repr switches to an exponent), at most 15 decimals (this pattern allows up to 15)
_CANONICAL = r"^(?:0\.0|1\.0|0\.0{0,3}[1-9](?:[0-9]{0,10}[1-9])?)$"


@dataclass
class FastRows:
    table: pa.Table            # verl rows, extra_info.index still to be assigned
    split: np.ndarray          # split name per row
    leftover: np.ndarray       # positions (into the candidate arrays) for the per-record path


def grounding_rows(conv, keys: np.ndarray, questions: pa.Array, answers: pa.Array, ids: pa.Array,
                   images: pa.Array, datasets: pa.Array) -> FastRows:
    """Rows for candidate records (aligned arrays); counts filtered ones in `conv.stats`."""
    cfg, stats = conv.cfg, conv.stats
    n = len(keys)
    safe = (_true(pc.string_is_ascii(ids)) & _true(pc.string_is_ascii(answers)) & _true(pc.string_is_ascii(images))
            & (_true(pc.string_is_ascii(datasets)) | ~np.asarray(datasets.is_valid())))
    rid = pc.utf8_trim(ids, _TRIM)
    answer = pc.utf8_trim(answers, _TRIM)
    image = pc.utf8_trim(images, _TRIM)
    safe &= (np.asarray(pc.utf8_length(rid)) > 0) & (np.asarray(pc.utf8_length(answer)) > 0)
    image_len = np.asarray(pc.utf8_length(image))
    safe &= (image_len > 0) & (image_len < 256)

    # radvlm_llava.dataset_of: the `dataset` field, else the id up to its last "_", else "unknown";
    # canonical without a split suffix (unless that leaves nothing)
    ds = pc.utf8_trim(datasets, _TRIM)
    has_ds = _true(pc.greater(pc.utf8_length(ds), 0))
    prefix = pc.if_else(pc.match_substring(rid, "_"), pc.replace_substring_regex(rid, "_[^_]*$", ""), "unknown")
    raw = pc.if_else(pa.array(has_ds), ds, prefix)
    stripped = pc.replace_substring_regex(raw, SPLIT_SUFFIX, "")
    dataset = pc.if_else(pc.greater(pc.utf8_length(stripped), 0), stripped, raw)
    filtered = np.zeros(n, bool)  # counted here, so neither kept nor handed back
    if cfg.source_options.dataset_filter is not None:
        keep = pa.array(sorted(cfg.source_options.dataset_filter))
        filtered = safe & ~(_true(pc.is_in(dataset, keep)) | _true(pc.is_in(raw, keep)))
        stats.filtered_out("dataset_filter", int(filtered.sum()))
        safe &= ~filtered

    # prompt per distinct question, image entries per distinct image
    q_codes, q_values = _codes(questions)
    prompts = [_prompt(conv, q) for q in q_values]
    safe &= np.array([p is not None for p in prompts] + [False], dtype=bool)[q_codes]
    i_codes, i_values = _codes(image)
    conv.resolver.prefetch([v for v in i_values if v])
    entries = [_entry(conv, v) for v in i_values]
    safe &= np.array([e is not None for e in entries] + [False], dtype=bool)[i_codes]

    # boxes: every piece after a "[" that reads as a box
    pieces = pc.split_pattern(answer, "[")
    piece_row = np.asarray(pc.list_parent_indices(pieces))
    flat = pc.list_flatten(pieces)
    starts = np.asarray(pieces.offsets)[:-1]
    not_first = np.arange(len(flat)) != starts[piece_row]
    is_box = _true(pc.match_substring_regex(flat, _BOX)) & not_first
    malformed = _true(pc.match_substring_regex(flat, _ANY_BOX)) & not_first & ~is_box
    safe[piece_row[malformed]] = False
    box_row = piece_row[is_box]
    fields = pc.extract_regex(pc.filter(flat, pa.array(is_box)), _BOX)
    coords = [fields.field(name) for name in ("x1", "y1", "x2", "y2")]
    canonical = np.ones(len(box_row), bool)
    for c in coords:
        canonical &= _true(pc.match_substring_regex(c, _CANONICAL))
    x1, y1, x2, y2 = (_floats(c, canonical) for c in coords)
    good_box = canonical & (x1 < x2) & (y1 < y2)   # canonical numbers already lie in [0, 1]
    safe[box_row[~good_box]] = False
    n_boxes = np.bincount(box_row, minlength=n)
    no_box = np.flatnonzero(safe & (n_boxes == 0))
    if len(no_box):
        texts = pc.take(answer, pa.array(no_box)).to_pylist()
        safe[no_box[[not says_no_finding(t) for t in texts]]] = False

    # prompt length filter, then the kept rows
    chars = np.array([p[2] if p else 0 for p in prompts] + [0])[q_codes]
    too_long = safe & (chars > cfg.max_prompt_chars) if cfg.max_prompt_chars is not None else np.zeros(n, bool)
    stats.filtered_out("prompt_too_long", int(too_long.sum()))
    leftover = np.flatnonzero(~safe & ~filtered)
    rows = np.flatnonzero(safe & ~too_long)
    if not len(rows):
        return FastRows(conv.schema.empty_table(), np.zeros(0, dtype=object), leftover)
    take = pa.array(rows)

    box_keep = safe[box_row] & ~too_long[box_row]
    box_text = pc.binary_join_element_wise("[", coords[0], ", ", coords[1], ", ", coords[2], ", ",
                                           coords[3], "]", "")
    kept_boxes = pc.filter(box_text, pa.array(box_keep))
    counts = n_boxes[rows]
    per_row = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32()), kept_boxes)
    truth = pc.binary_join_element_wise('{"boxes": [', pc.binary_join(per_row, ", "), '], "task": "grounding"}', "")

    rid_kept = pc.take(rid, take)
    split = np.array([conv.split_of(r) for r in rid_kept.to_pylist()], dtype=object) \
        if conv.split_rule != "auto" or cfg.val_fraction > 0 else np.full(len(rows), "train", dtype=object)
    answer_type = np.where(counts == 0, "no_finding", np.where(counts == 1, "single_box", "multi_box"))
    dataset_kept = pc.take(dataset, take)
    question_text = pa.array([p[0] if p else None for p in prompts], pa.string())
    q_rows = pa.array(q_codes[rows])
    m = len(rows)
    extra = pa.StructArray.from_arrays([
        rid_kept, pa.array(split, pa.string()), pa.array(np.zeros(m, np.int64)), pa.array(keys[rows]),
        pa.array(np.full(m, "grounding", dtype=object), pa.string()), dataset_kept, pc.take(question_text, q_rows),
        pc.take(answer, take), pa.array(answer_type.astype(object), pa.string()),
        pa.array(np.full(m, "", dtype=object), pa.string()), pa.array(np.ones(m, np.int64)),
        pa.array(counts.astype(np.int64)), pc.take(raw, take)], fields=list(EXTRA_INFO))
    table = pa.Table.from_arrays([
        dataset_kept, _prompts(conv, prompts, q_rows, m), _images(conv, entries, i_codes[rows]),
        pa.array(np.full(m, "grounding", dtype=object), pa.string()),
        pa.StructArray.from_arrays([pa.array(np.full(m, "rule", dtype=object), pa.string()), truth],
                                   fields=list(conv.schema.field("reward_model").type)),
        extra], schema=conv.schema)

    kept_box_rows = box_keep
    stats.keep_many(split, dataset_kept.to_numpy(zero_copy_only=False), answer_type, chars[rows], counts,
                    (x2 - x1)[kept_box_rows], (y2 - y1)[kept_box_rows])
    return FastRows(table, split, leftover)


def _codes(array: pa.Array) -> tuple[np.ndarray, list]:
    """Dictionary codes (null -> len(values)) and the distinct values of a string array."""
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    return np.asarray(encoded.indices.fill_null(len(values))), values


def _entry(conv, image: str | None) -> str | None:
    if not image:
        return None
    try:
        (entry,) = conv.resolver.entries([image])
    except (Drop, ValueError):
        return None
    return entry["image"]


def _prompts(conv, prompts: list, q_rows: pa.Array, m: int) -> pa.ListArray:
    messages = next(p[1] for p in prompts if p)
    per_row = len(messages)
    roles = [msg["role"] for msg in messages]
    user = pa.array([p[1][-1]["content"] if p else None for p in prompts], pa.string())
    contents = [pa.array([msg["content"]] * m, pa.string()) for msg in messages[:-1]] + [pc.take(user, q_rows)]
    order = np.arange(m * per_row)  # row-major position of message j of row r: r * per_row + j
    flat_contents = pc.take(pa.concat_arrays(contents), pa.array(order % per_row * m + order // per_row))
    flat_roles = pa.array(np.tile(np.array(roles, dtype=object), m), pa.string())
    struct = conv.schema.field("prompt").type.value_type
    return pa.ListArray.from_arrays(pa.array(np.arange(0, (m + 1) * per_row, per_row), pa.int32()),
                                    pa.StructArray.from_arrays([flat_roles, flat_contents], fields=list(struct)))


def _images(conv, entries: list, codes: np.ndarray) -> pa.ListArray:
    struct = conv.schema.field("images").type.value_type
    m = len(codes)
    paths = pc.take(pa.array(entries + [None], pa.string()), pa.array(codes))
    children = {"image": paths, "min_pixels": pa.array(np.full(m, conv.cfg.images.min_pixels or 0, np.int64)),
                "max_pixels": pa.array(np.full(m, conv.cfg.images.max_pixels or 0, np.int64))}
    return pa.ListArray.from_arrays(pa.array(np.arange(m + 1), pa.int32()),
                                    pa.StructArray.from_arrays([children[f.name] for f in struct], fields=list(struct)))


def _floats(column: pa.Array, canonical: np.ndarray) -> np.ndarray:
    """The canonical numbers parsed in C (correctly rounded, like float()); NaN elsewhere."""
    out = np.full(len(column), np.nan)
    out[canonical] = np.asarray(pc.cast(pc.filter(column, pa.array(canonical)), pa.float64()))
    return out


def _prompt(conv, raw: str | None) -> tuple | None:
    """(question, messages, characters) for a raw question, or None if it is not a plain one.

    Memoised per run: RadVLM questions come from a few hundred templates.
    """
    memo = conv.memo.setdefault("grounding_prompts", {})
    if raw not in memo:
        try:
            question = _question(require_text(raw, "empty_question", "turn 0"))
        except Drop:
            memo[raw] = None
        else:
            messages = conv.cfg.prompt.render(question, "grounding", 1)
            memo[raw] = (question, messages, sum(len(msg["content"]) for msg in messages))
    return memo[raw]


def _question(text: str) -> str:
    """The question of a one-image record without its tag."""
    question = split_image_tags(text, 1)
    if not question:
        raise Drop("empty_question", "the question is only <image> tags")
    return question


def _true(mask) -> np.ndarray:
    return np.asarray(mask.fill_null(False)) if hasattr(mask, "fill_null") else np.asarray(mask)
