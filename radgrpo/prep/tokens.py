"""Exact prompt token counts with the model's own processor (the only prep module that needs
transformers, imported when a token limit is configured).

It counts what verl's `RLHFDataset` length filter counts - the chat template applied to the
messages with their images, each image resized by `qwen_vl_utils.fetch_image` as verl does (with the
row's min/max_pixels), then the processor's `input_ids` - so training can run with
`data.filter_overlong_prompts=false` and skip that slow pass at every start.
"""

from __future__ import annotations

import re
from typing import Any

from PIL import Image

from radgrpo.prep.errors import PrepError

_TAG = re.compile("(<image>)")


class TokenCounter:
    def __init__(self, processor_path: str):
        try:
            import transformers  # noqa: F401
        except ImportError as exc:
            raise PrepError(f"the token filter needs transformers: {exc}") from None
        from radgrpo.models.processors import load_processor

        try:  # as training loads it (the family's adjustments included, e.g. Gemma3: one <bos>)
            self.processor = load_processor(processor_path)
        except (OSError, ValueError) as exc:
            raise PrepError(f"cannot load a processor from token_filter.processor={processor_path}: "
                            f"{str(exc).splitlines()[0]}") from None

    def count(self, messages: list[dict[str, str]], images: list[dict[str, Any]]) -> int:
        content_messages = [{"role": m["role"], "content": _content(m["content"])} for m in messages]
        text = self.processor.apply_chat_template(content_messages, add_generation_prompt=True,
                                                  tokenize=False)
        if not images or not hasattr(self.processor, "image_processor"):
            return len(self.processor(text=[text])["input_ids"][0])
        from qwen_vl_utils import fetch_image

        patch = getattr(self.processor.image_processor, "patch_size", 14)
        pil = [fetch_image(_with_image(e), image_patch_size=patch) for e in images]
        return len(self.processor(text=[text], images=pil)["input_ids"][0])


def _content(text: str) -> list[dict[str, str]]:
    parts = [p for p in _TAG.split(text) if p]
    return [{"type": "image"} if p == "<image>" else {"type": "text", "text": p} for p in parts]


def _with_image(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry as fetch_image takes it: embedded bytes opened as a PIL image (as verl does)."""
    if "bytes" not in entry:
        return entry
    import io

    out = {k: v for k, v in entry.items() if k != "bytes"}
    out["image"] = Image.open(io.BytesIO(entry["bytes"]))
    return out
