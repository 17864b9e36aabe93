"""`format`: does the output follow the required tag layout?

Default layout `<think>...</think><answer>...</answer>`, the format regex of MedVLM-R1 / VLM-R1
(`<think>.*?</think>\\s*<answer>.*?</answer>`, fullmatch, DOTALL); `pairs` configures any other
layout, e.g. seed 004's MedGemma `<start_working_out>...<end_working_out><SOLUTION>...</SOLUTION>`.

Implemented with `str.find` instead of the regex: each tag must occur exactly once, in order, with
only whitespace between pairs (and around them when `strict`). That is what the regex accepts minus
its loophole (`.*?` lets a second `</answer>` through), and it is linear on adversarial input where
the lazy regex backtracks.
"""

from __future__ import annotations

from radgrpo.rewards.registry import register

THINK_ANSWER = (("<think>", "</think>"), ("<answer>", "</answer>"))
MEDGEMMA = (("<start_working_out>", "<end_working_out>"), ("<SOLUTION>", "</SOLUTION>"))


def follows_format(text: str, pairs=THINK_ANSWER, strict: bool = True) -> bool:
    """True when `text` is exactly the tag pairs in order (see module docstring)."""
    pos = 0
    for i, (open_tag, close_tag) in enumerate(pairs):
        if text.count(open_tag) != 1 or text.count(close_tag) != 1:
            return False
        start = text.find(open_tag, pos)
        if start < 0 or (strict or i > 0) and text[pos:start].strip():
            return False
        end = text.find(close_tag, start + len(open_tag))
        if end < 0:
            return False
        pos = end + len(close_tag)
    return not (strict and text[pos:].strip())


def _pairs(pairs) -> tuple[tuple[str, str], ...]:
    return tuple((str(o), str(c)) for o, c in pairs)


def _check(params: dict) -> None:
    pairs = params.get("pairs", THINK_ANSWER)
    if not pairs or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(p) for p in pairs):
        raise ValueError(f"format params.pairs must be a list of [open, close] tag pairs, got {pairs!r}")


@register("format", low=0.0, high=1.0, check_config=_check)
def format_reward(text: str, gt: dict, extra_info: dict, pairs=THINK_ANSWER, strict: bool = True) -> dict:
    """1.0 when the output follows the tag layout, else 0.0 (no components)."""
    ok = follows_format(text, _pairs(pairs) if pairs is not THINK_ANSWER else pairs, strict)
    return {"score": 1.0 if ok else 0.0, "reason": "" if ok else "output does not follow the tag layout"}
