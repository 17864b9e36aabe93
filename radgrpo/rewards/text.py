"""Text helpers shared by the rewards: tag sections, normalisation, tokens, token F1.

Every reward reads some section of a model answer (`<answer>`, `<think>`, MedGemma's `<SOLUTION>`)
and compares words. Doing that in one place keeps the rewards agreeing on what "the answer" is, and
keeps the hot path to `str.rfind` and one compiled regex (rewards run 4,096 times per GRPO step).
Token F1 is the SQuAD definition (Rajpurkar et al. 2016), as seed 004 uses it for explanations.
"""

from __future__ import annotations

import re
from collections import Counter

# Longer inputs are cut before word-level work: a reward must stay fast on a runaway generation,
# and no radiology answer or report is anywhere near this long.
MAX_WORDS_CHARS = 20_000

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_THINK_CLOSE = "</think>"


def tag_section(text: str, tag: str, allow_unclosed: bool = True) -> str | None:
    """Content of the last `<tag>...</tag>` in `text`, or None when there is none.

    The last pair wins because models often mention the tag while reasoning before answering. An
    opening tag with no closing one (a generation cut by the length limit) gives the rest of the
    text when `allow_unclosed`.
    """
    open_tag, close_tag = f"<{tag}>", f"</{tag}>"
    end = text.rfind(close_tag)
    if end >= 0:
        start = text.rfind(open_tag, 0, end)
        if start >= 0:
            return text[start + len(open_tag) : end]
    if allow_unclosed:
        start = text.rfind(open_tag)
        if start >= 0:
            return text[start + len(open_tag) :]
    return None


def answer_section(text: str, tags: tuple[str, ...] = ("answer", "SOLUTION")) -> str:
    """What the model gave as its answer: the first of `tags` present, else the text after the
    last `</think>`, else the whole text."""
    for tag in tags:
        if f"<{tag}>" in text:
            section = tag_section(text, tag)
            if section is not None:
                return section
    end = text.rfind(_THINK_CLOSE)
    return text[end + len(_THINK_CLOSE) :] if end >= 0 else text


def reasoning_section(text: str) -> str:
    """The model's reasoning: `<think>` or MedGemma's working-out block, else the whole text."""
    section = tag_section(text, "think", allow_unclosed=False)
    if section is None:
        start, end = text.find("<start_working_out>"), text.find("<end_working_out>")
        if 0 <= start < end:
            section = text[start + len("<start_working_out>") : end]
    return text if section is None else section


def words(text: str) -> list[str]:
    """Lowercased alphanumeric tokens (punctuation and markup dropped), on a bounded prefix."""
    return _WORD.findall(text[:MAX_WORDS_CHARS].lower())


def normalise(text: str) -> str:
    """Lowercase, punctuation-free, single-spaced form used for exact answer comparison."""
    return " ".join(words(text))


def token_f1(prediction: list[str], reference: list[str]) -> float:
    """SQuAD token F1 between two token lists; 1.0 when both are empty, 0.0 when one is."""
    if not prediction or not reference:
        return float(not prediction and not reference)
    common = sum((Counter(prediction) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(reference)
    return 2 * precision * recall / (precision + recall)
