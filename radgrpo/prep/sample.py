"""`Sample`: one record after its source reader understood it, before prompts and images.

Every source reader turns its own format into this shape, so everything after it (image checks,
prompt templates, filters, rows) is written once. Text fields are checked to be encodable as UTF-8
here, because parquet cannot store lone surrogates and a crash at write time would lose the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from radgrpo.prep.errors import Drop

IMAGE_TAG = re.compile(r"\s*<image>\s*")


@dataclass
class Sample:
    """A record in source-neutral form.

    `images` holds references: a path (str, absolute or relative to the source's image root) or
    encoded bytes. `truth` holds the ground-truth fields for `encode_ground_truth(task, **truth)`.
    `answer_type` and `label` are stratification keys copied into `extra_info`.
    """

    id: str
    dataset: str
    task: str
    question: str
    answer: str
    images: list[Any]
    truth: dict[str, Any] = field(default_factory=dict)
    answer_type: str = ""
    label: str = ""
    history: list[dict[str, str]] = field(default_factory=list)  # earlier turns of a conversation
    id_prefix: str = ""  # the source's own dataset name when `dataset` is a canonical form of it


def require_text(value: Any, reason: str, what: str) -> str:
    """Return `value` stripped if it is a non-empty string, else raise Drop(reason)."""
    if value is None:
        raise Drop(reason, f"{what} is missing")
    if not isinstance(value, str):
        raise Drop("bad_field_type", f"{what} is {type(value).__name__}, not a string")
    text = value.strip()
    if not text:
        raise Drop(reason, f"{what} is empty")
    return text


def check_unicode(*texts: str) -> None:
    """Raise Drop("bad_unicode") if a text holds undecodable bytes or lone surrogates."""
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise Drop("bad_unicode", f"undecodable text at position {exc.start}") from None


def split_image_tags(question: str, n_images: int) -> str:
    """Strip `<image>` tags from a question, checking there is one per image (or none at all).

    The prompt renderer puts one tag per image back in a fixed place, so templates never have to
    know where a source put them.
    """
    tags = question.count("<image>")
    if tags and tags != n_images:
        raise Drop("image_placeholder_mismatch", f"{tags} <image> tags for {n_images} image(s)")
    return IMAGE_TAG.sub(" ", question).strip() if tags else question
