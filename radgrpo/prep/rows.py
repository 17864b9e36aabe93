"""Rows in verl's multimodal parquet schema (and the TRL/ms-swift layout), with fixed arrow types.

The arrow schema is explicit rather than inferred so that every shard of a dataset has identical
column types (a shard whose first rows lack a field would otherwise get a different struct) and so
that `extra_info` always carries the same stratification keys for samplers.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from radgrpo.data.schema import ABILITY_BY_TASK, encode_ground_truth
from radgrpo.prep.sample import Sample

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
EXTRA_INFO = pa.struct([
    ("id", pa.string()), ("split", pa.string()), ("index", pa.int64()), ("source_index", pa.int64()),
    ("task", pa.string()), ("dataset", pa.string()), ("question", pa.string()),
    ("answer", pa.string()), ("answer_type", pa.string()), ("label", pa.string()),
    ("num_images", pa.int64()), ("num_boxes", pa.int64()),
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


def verl_row(sample: Sample, messages: list[dict], images: list[dict], split: str, index: int,
             source_index: int, ground_truth: str) -> dict[str, Any]:
    return {
        "data_source": sample.dataset,
        "prompt": messages,
        "images": images,
        "ability": ABILITY_BY_TASK[sample.task],
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {
            "id": sample.id, "split": split, "index": index, "source_index": source_index,
            "task": sample.task, "dataset": sample.dataset, "question": sample.question,
            "answer": sample.answer, "answer_type": sample.answer_type, "label": sample.label,
            "num_images": len(images), "num_boxes": len(sample.truth.get("boxes", ())),
        },
    }


def trl_row(sample: Sample, messages: list[dict], images: list[dict], ground_truth: str) -> dict[str, Any]:
    """TRL GRPO / ms-swift layout: `<image>` tags in the text, images (path or bytes) beside it."""
    files = [{"bytes": e.get("bytes"), "path": e["image"][len("file://"):] if "image" in e else None}
             for e in images]
    return {"id": sample.id, "data_source": sample.dataset, "task": sample.task, "prompt": messages,
            "images": files, "solution": sample.answer, "ground_truth": ground_truth}


def ground_truth_of(sample: Sample) -> str:
    return encode_ground_truth(sample.task, **sample.truth)
