"""Report-generation rewards: `bleu`, `rouge_l`, `report_f1`, all in [0, 1].

The report is the model's answer section (`<answer>`, else the text after `</think>`, else the
whole output); the reference is the ground truth's `report` (or `answer`).
- `bleu`: sacrebleu sentence BLEU (BLEU-4, exponential smoothing, 13a tokeniser, effective order)
  divided by 100, for seed 000's report-generation BLEU reward (whose library the seed does not
  name). sacrebleu and nltk differ (the notes quote 25.2 vs 0.135 on one pair); radgrpo uses
  sacrebleu only, so numbers are comparable across runs.
- `rouge_l`: ROUGE-L F1 with rouge-score's tokenisation (lowercase, non-alphanumerics to spaces, no
  stemming; Lin 2004). The LCS is computed with the bit-parallel algorithm of Hyyrö (2004), exact
  and fast enough on long outputs where the quadratic table is not.
- `report_f1`: SQuAD token F1 between answer and report words.
"""

from __future__ import annotations

import re

from radgrpo.rewards.registry import register
from radgrpo.rewards.text import MAX_WORDS_CHARS, answer_section, token_f1, words


def reference_text(gt: dict) -> str | None:
    """The reference report of a ground truth, or None when it has none."""
    for key in ("report", "answer", "explanation"):
        if isinstance(gt.get(key), str):
            return gt[key]
    raw = gt.get("raw")
    return raw if isinstance(raw, str) else None


def _no_reference(gt: dict) -> dict:
    return {"score": 0.0, "reason": f"ground truth has no reference text (task {gt.get('task')!r})"}


@register("bleu", low=0.0, high=1.0)
def bleu_reward(text: str, gt: dict, extra_info: dict) -> dict:
    """sacrebleu sentence BLEU-4 / 100 between the answer and the reference report."""
    reference = reference_text(gt)
    if reference is None:
        return _no_reference(gt)
    hypothesis = answer_section(text)[:MAX_WORDS_CHARS]
    return {"score": _sentence_bleu().sentence_score(hypothesis, [reference[:MAX_WORDS_CHARS]]).score / 100.0}


_BLEU = None


def _sentence_bleu():
    # One BLEU object per process: building it (tokeniser set-up) costs more than scoring a pair.
    global _BLEU
    if _BLEU is None:
        from sacrebleu.metrics import BLEU

        _BLEU = BLEU(effective_order=True)
    return _BLEU


_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenisation (lowercase, split on non-alphanumerics, no stemming)."""
    return _ROUGE_TOKEN.findall(text[:MAX_WORDS_CHARS].lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel over `a` (Hyyrö 2004)."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l_f1(prediction: str, reference: str) -> float:
    pred, ref = rouge_tokens(prediction), rouge_tokens(reference)
    lcs = lcs_length(ref, pred)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


@register("rouge_l", low=0.0, high=1.0)
def rouge_l_reward(text: str, gt: dict, extra_info: dict) -> dict:
    """ROUGE-L F1 between the answer and the reference report."""
    reference = reference_text(gt)
    if reference is None:
        return _no_reference(gt)
    return {"score": rouge_l_f1(answer_section(text), reference)}


@register("report_f1", low=0.0, high=1.0)
def report_f1_reward(text: str, gt: dict, extra_info: dict) -> dict:
    """Token F1 between the answer's words and the reference report's words."""
    reference = reference_text(gt)
    if reference is None:
        return _no_reference(gt)
    return {"score": token_f1(words(answer_section(text)), words(reference))}
