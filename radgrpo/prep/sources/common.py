"""Field helpers shared by the source readers: ids, image references, MCQA options."""

from __future__ import annotations

import base64
import binascii
import json
import re
import string
from typing import Any

from radgrpo.prep.errors import Drop

_OPTION_PREFIX = re.compile(r"^\s*\(?([A-Z])[\.\):]\s*(.*)$", re.DOTALL)
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|tiff?|bmp|gif|webp|dcm|dicom)$", re.IGNORECASE)


def record_id(value: Any, key: Any) -> str:
    """The record's own id as a string, or its position in the input when it has none."""
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return f"record-{key}"


def image_refs(value: Any) -> list[Any]:
    """Normalise an image field to a list of references (path strings or bytes).

    Accepts a path, a list of paths, `{"bytes": ..., "path": ...}` dicts (Hugging Face Image
    features), raw bytes and base64 strings (CheXPO's "relative path or base64 X-ray").
    """
    if value is None:
        raise Drop("no_image", "the record has no image")
    items = value if isinstance(value, (list, tuple)) else [value]
    refs = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("bytes") or item.get("path") or item.get("image")
        if isinstance(item, (bytes, bytearray)):
            refs.append(bytes(item))
        elif isinstance(item, str):
            if item.strip():
                refs.append(_decode_base64(item.strip()))
        elif item is not None:
            raise Drop("bad_field_type", f"image reference is {type(item).__name__}")
    if not refs:
        raise Drop("no_image", "the image field is empty")
    return refs


def _decode_base64(text: str) -> str | bytes:
    """A base64 or data-URI image as bytes; anything that looks like a path stays a path."""
    if text.startswith("data:image"):
        text = text.split(",", 1)[-1]
    elif len(text) < 256 or _IMAGE_SUFFIX.search(text):
        return text
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text


def parse_options(value: Any) -> dict[str, str]:
    """MCQA options as {"A": text, ...} from a dict, a JSON string or a list ("A. text" or text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise Drop("bad_options", "options is a string that is not JSON") from None
    if isinstance(value, dict):
        options = {str(k).strip().upper(): v for k, v in value.items() if v is not None}
    elif isinstance(value, (list, tuple)):
        options = {}
        for letter, item in zip(string.ascii_uppercase, value):
            if not isinstance(item, str):
                raise Drop("bad_options", f"option {letter} is {type(item).__name__}")
            m = _OPTION_PREFIX.match(item)
            options[m.group(1) if m else letter] = m.group(2) if m else item
    else:
        raise Drop("bad_options", f"options is {type(value).__name__}")
    if len(options) < 2 or not all(isinstance(v, str) and v.strip() for v in options.values()):
        raise Drop("bad_options", "fewer than two non-empty options")
    return {k: v.strip() for k, v in options.items()}


def answer_label(value: Any, options: dict[str, str]) -> str:
    """The correct option letter ("B", "B. text" or the option text itself), checked."""
    if not isinstance(value, str) or not value.strip():
        raise Drop("empty_answer", "no correct answer label")
    text = value.strip()
    m = _OPTION_PREFIX.match(text)
    label = m.group(1) if m else text.upper()
    if label in options:
        return label
    for letter, option in options.items():
        if option.lower() == text.lower():
            return letter
    raise Drop("bad_options", f"answer {text[:40]!r} is not one of the options {sorted(options)}")


def mcqa_question(question: str, options: dict[str, str]) -> str:
    """The question followed by one "A. text" line per option."""
    return question + "\n" + "\n".join(f"{k}. {v}" for k, v in options.items())


def closed_or_open(answer: str) -> str:
    """answer_type for VQA stratification: yes/no answers are closed, the rest open."""
    return "closed" if answer.strip().lower().rstrip(".") in ("yes", "no") else "open"
