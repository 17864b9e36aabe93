"""`medgemma`: the seed-004 composite reward (MedGemma-4B GRPO with TRL), in [0, 2].

Seed 004: correct answer letter 1.0; explanation quality = token F1 with the gold explanation x 0.6;
evidence usage (words from the radiology report) x 0.2; format compliance
(`<start_working_out>...<end_working_out><SOLUTION>...</SOLUTION>`) x 0.1; conciseness (response
<= 220 characters) x 0.1. The seed does not define "uses words from the report"; radgrpo counts
the report's content words (>= 4 letters, not stop words) that the response uses, full credit at
`evidence_words` of them. Rows without an explanation or evidence text get 0 for that part.
"""

from __future__ import annotations

from radgrpo.rewards.format import MEDGEMMA, follows_format
from radgrpo.rewards.mcqa import extract_choice, gold_label
from radgrpo.rewards.registry import register
from radgrpo.rewards.text import token_f1, words

WEIGHTS = {"answer": 1.0, "explanation": 0.6, "evidence": 0.2, "format": 0.1, "concise": 0.1}
_STOP = frozenset(
    "this that with from there their these those which were have has been being into onto than then "
    "also only very more most some such each other upon within without about above below there".split()
)
_TAGS = ("<start_working_out>", "<end_working_out>", "<SOLUTION>", "</SOLUTION>")


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if len(w) >= 4 and w not in _STOP}


@register(
    "medgemma", low=0.0, high=sum(WEIGHTS.values()), components=("answer", "explanation", "evidence", "format", "concise")
)
def medgemma_reward(text: str, gt: dict, extra_info: dict, max_chars: int = 220, evidence_words: int = 3) -> dict:
    """Weighted sum of the five seed-004 parts; each part in [0, 1] is reported as a component."""
    gold = gold_label(gt)
    options = gt.get("options") if isinstance(gt.get("options"), dict) else None
    plain = text
    for tag in _TAGS:
        plain = plain.replace(tag, " ")
    explanation, evidence = gt.get("explanation"), gt.get("evidence")
    parts = {
        "answer": float(gold is not None and extract_choice(text, options) == gold),
        "explanation": token_f1(words(plain), words(explanation)) if isinstance(explanation, str) else 0.0,
        "evidence": 0.0,
        "format": float(follows_format(text, MEDGEMMA)),
        "concise": float(len(text.strip()) <= max_chars),
    }
    if isinstance(evidence, str) and evidence_words > 0:
        used = len(content_words(plain) & content_words(evidence))
        parts["evidence"] = min(1.0, used / evidence_words)
    return {"score": sum(WEIGHTS[k] * v for k, v in parts.items()), **parts}
