"""Rows in verl's multimodal parquet schema (and the TRL/ms-swift layout), with fixed arrow types.

The arrow schema is explicit rather than inferred so that every shard of a dataset has identical
column types (a shard whose first rows lack a field would otherwise get a different struct) and so
that `extra_info` always carries the same stratification keys for samplers.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from radgrpo.data.schema import encode_ground_truth
from radgrpo.prep.sample import Sample

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EXTRA_INFO = pa.struct([
    ("id", pa.string()), ("split", pa.string()), ("index", pa.int64()), ("source_index", pa.int64()),
    ("task", pa.string()), ("dataset", pa.string()), ("question", pa.string()),
    ("answer", pa.string()), ("answer_type", pa.string()), ("label", pa.string()),
    ("num_images", pa.int64()), ("num_boxes", pa.int64()), ("id_prefix", pa.string()),
])


def verl_schema(image_mode: str, min_pixels: bool, max_pixels: bool) -> pa.Schema:
    """The verl table schema; image entries hold a path or bytes, plus pixel bounds if set."""
    image_fields = [("bytes", pa.binary())] if image_mode == "bytes" else [("image", pa.string())]
    image_fields += [("min_pixels", pa.int64())] if min_pixels else []
    image_fields += [("max_pixels", pa.int64())] if max_pixels else []
    return pa.schema([
        ("data_source", pa.string()), ("prompt", MESSAGES),
        ("images", pa.list_(pa.struct(image_fields))), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO),
    ])


_STR = {"dtype": "string", "_type": "Value"}
# The "huggingface" metadata makes `datasets.load_dataset("parquet", ...)` decode `images` to PIL
# images, which is what TRL's GRPOTrainer and ms-swift take.
TRL_SCHEMA = pa.schema(
    [("id", pa.string()), ("data_source", pa.string()), ("task", pa.string()), ("prompt", MESSAGES),
     ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
     ("solution", pa.string()), ("ground_truth", pa.string())],
    metadata={"huggingface": json.dumps({"info": {"features": {
        "id": _STR, "data_source": _STR, "task": _STR,
        "prompt": {"feature": {"role": _STR, "content": _STR}, "_type": "List"},
        "images": {"feature": {"_type": "Image"}, "_type": "List"},
        "solution": _STR, "ground_truth": _STR}}})},
)


class VerlColumns:
    """verl rows of one split, gathered column by column.

    Building the arrow arrays column by column is several times faster than
    `pa.Table.from_pylist` over nested row dicts, which matters at a million rows. `add` takes one
    row's parts; `extra` is the tuple of `extra_info` values in `EXTRA_INFO` field order.
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, data_source: str, messages: list[dict[str, str]], images: list[dict[str, Any]],
            ability: str, ground_truth: str, extra: tuple) -> None:
        """Queue one row (one tuple append: the transposition into columns happens in C later)."""
        self.rows.append((data_source, messages, images, ability, ground_truth, extra))

    def table(self) -> pa.Table:
        """The rows gathered so far as a table (then cleared)."""
        s = self.schema
        data_source, messages, images, ability, truth, extra = zip(*self.rows)
        self.rows = []
        prompt = _list_of_structs(messages, s.field("prompt").type.value_type)
        image_lists = _list_of_structs(images, s.field("images").type.value_type)
        reward = pa.StructArray.from_arrays(
            [pa.array(["rule"] * len(truth), pa.string()), pa.array(truth, pa.string())],
            fields=list(s.field("reward_model").type))
        extra_arrays = [pa.array(col, f.type) for col, f in zip(zip(*extra), EXTRA_INFO)]
        return pa.Table.from_arrays(
            [pa.array(data_source, pa.string()), prompt, image_lists, pa.array(ability, pa.string()), reward,
             pa.StructArray.from_arrays(extra_arrays, fields=list(EXTRA_INFO))], schema=s)


def _list_of_structs(lists: tuple[list[dict], ...], struct: pa.StructType) -> pa.ListArray:
    """A list<struct> array from per-row lists of dicts, built field by field."""
    offsets = [0]
    for items in lists:
        offsets.append(offsets[-1] + len(items))
    flat = [item for items in lists for item in items]
    children = [pa.array([item.get(f.name) for item in flat], f.type) for f in struct]
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                    pa.StructArray.from_arrays(children, fields=list(struct)))


def extra_info(sample: Sample, split: str, index: int, source_index: int, n_images: int) -> tuple:
    """`extra_info` values of a row, in `EXTRA_INFO` field order."""
    return (sample.id, split, index, source_index, sample.task, sample.dataset, sample.question,
            sample.answer, sample.answer_type, sample.label, n_images, len(sample.truth.get("boxes", ())),
            sample.id_prefix or sample.dataset)


def trl_row(sample: Sample, messages: list[dict], images: list[dict], ground_truth: str) -> dict[str, Any]:
    """TRL GRPO / ms-swift layout: `<image>` tags in the text, images (path or bytes) beside it."""
    files = [{"bytes": e.get("bytes"), "path": e["image"][len("file://"):] if "image" in e else None}
             for e in images]
    return {"id": sample.id, "data_source": sample.dataset, "task": sample.task, "prompt": messages,
            "images": files, "solution": sample.answer, "ground_truth": ground_truth}


def ground_truth_of(sample: Sample) -> str:
    if sample.task == "grounding" and sample.truth.keys() == {"boxes"}:
        return grounding_truth(sample.truth["boxes"])
    return encode_ground_truth(sample.task, **sample.truth)


def grounding_truth(boxes: list[list[float]]) -> str:
    """`encode_ground_truth("grounding", boxes=boxes)` for boxes `extract_boxes` already validated,
    without validating and serialising them through json a second time (a third of the per-row
    cost at a million rows). tests/unit/test_prep_rows.py checks both agree character for character.
    """
    return ('{"boxes": [' + ", ".join([f"[{x1!r}, {y1!r}, {x2!r}, {y2!r}]" for x1, y1, x2, y2 in boxes])
            + '], "task": "grounding"}')
