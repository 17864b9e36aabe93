"""`r1v_acc`: binary answer accuracy of seed 003 (CheXPO-v2 `external_r1v_acc`, ms-swift's
`MultiModalAccuracyORM`), in [0, 1].

Seed 003: parse the `<answer>` span (fallback: sentences) and score binary accuracy by overlap
with the canonical answer. radgrpo reads "overlap" as: normalised exact match, or SQuAD token F1
between the answer and the canonical answer >= `min_overlap` (default 0.5, so padding the answer
with many words does not pass). Without `<answer>` the last sentence of the text after `</think>`
is the answer. A canonical answer written with its own `<answer>` tags (ms-swift solutions) is
unwrapped first.
"""

from __future__ import annotations

import re

from radgrpo.rewards.registry import register
from radgrpo.rewards.text import answer_section, normalise, tag_section, token_f1, words

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def canonical_answer(gt: dict) -> str | None:
    """The ground truth's `answer` text, unwrapped from `<answer>` tags when it has them."""
    answer = gt.get("answer")
    if not isinstance(answer, str):
        return None
    inner = tag_section(answer, "answer", allow_unclosed=False)
    return inner if inner is not None else answer


def predicted_answer(text: str) -> str:
    if "<answer>" in text:
        return answer_section(text, tags=("answer",))
    tail = answer_section(text, tags=()).strip()[-2000:]
    sentences = [s for s in _SENTENCE_END.split(tail) if s.strip()]
    return sentences[-1] if sentences else ""


@register("r1v_acc", low=0.0, high=1.0, components=("overlap",))
def r1v_acc_reward(text: str, gt: dict, extra_info: dict, min_overlap: float = 0.5) -> dict:
    """1.0 when the answer matches the canonical answer (exactly, or token F1 >= min_overlap)."""
    truth = canonical_answer(gt)
    if truth is None:
        return {"score": 0.0, "reason": f"ground truth has no answer (task {gt.get('task')!r})"}
    pred = predicted_answer(text)
    overlap = token_f1(words(pred), words(truth))
    exact = normalise(pred) == normalise(truth)
    return {"score": float(exact or overlap >= min_overlap), "overlap": overlap}
