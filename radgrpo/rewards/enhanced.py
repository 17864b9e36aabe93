"""`enhanced_grounding`: seed 000's enhanced medical grounding reward (after arXiv 2503.03278,
"Enhancing Abnormality Grounding for Vision Language Models with Knowledge Descriptions"), in [0, 1].

Seed 000 spec, four criteria with weights 40/30/20/10 (`variant: reasoning` uses 30/40/20/10):
- spatial accuracy: IoU weighted by anatomical importance - the `iou` reward times the importance of
  the region the ground truth names (`labels`/`phrase`; 1.0 when it names none);
- semantic understanding: medical terminology and anatomical awareness - mean of: names the gold
  abnormality (any known abnormality when the ground truth has no label), names an anatomical
  region, uses a visual descriptor (size, shape, density, location);
- clinical reasoning: the `<think>` content - mean of: a systematic approach, a differential
  diagnosis, reasoning of at least `min_reasoning_words` words; 0 without `<think>`;
- clinical relevance: actionability and specificity - mean of: the answer gives a box and names a
  finding, the answer grades severity or recommends an action; scaled by the gold abnormality's
  severity (1.0 when unknown).
It falls back to the basic `iou` reward when it cannot score: a "no finding" ground truth (nothing
to describe, so 0.8 / 0.0 as in `iou`) or a ground truth without boxes.
Vocabulary and weights: `radgrpo.rewards.terms`.
"""

from __future__ import annotations

import re

from radgrpo.rewards.boxes import COORDS, gt_boxes
from radgrpo.rewards.grounding import iou_components
from radgrpo.rewards.registry import register
from radgrpo.rewards.terms import (
    ABNORMALITY_OF,
    ABNORMALITY_RE,
    ABNORMALITY_SEVERITY,
    ANATOMY_IMPORTANCE,
    ANATOMY_OF,
    ANATOMY_RE,
    DESCRIPTOR_RE,
)
from radgrpo.rewards.text import MAX_WORDS_CHARS, answer_section, tag_section

WEIGHTS = {
    "standard": {"spatial": 0.4, "semantic": 0.3, "reasoning": 0.2, "relevance": 0.1},
    "reasoning": {"spatial": 0.3, "semantic": 0.4, "reasoning": 0.2, "relevance": 0.1},
}
_SYSTEMATIC = re.compile(r"\b(first|then|next|finally|systematic|evaluate|examine|assess|compare|review)\b")
_DIFFERENTIAL = re.compile(r"\b(differential|versus|vs|consider|rule out|could be|likely|unlikely|suggest\w*)\b")
_ACTION = re.compile(r"\b(recommend\w*|follow[- ]up|urgent|correlat\w*|mild|moderate|severe|significant|small|large)\b")


def _gold_terms(gt: dict) -> str:
    labels = gt.get("labels") if isinstance(gt.get("labels"), list) else []
    phrase = gt.get("phrase") if isinstance(gt.get("phrase"), str) else ""
    return " ".join([str(label) for label in labels] + [phrase]).lower()


@register(
    "enhanced_grounding",
    low=0.0,
    high=1.0,
    components=("spatial", "semantic", "reasoning", "relevance", "iou"),
    check_config=lambda params: _check(params),  # defined below the reward it checks
)
def enhanced_grounding_reward(
    text: str,
    gt: dict,
    extra_info: dict,
    variant: str = "standard",
    coords: str = "auto",
    no_finding_score: float = 0.8,
    max_boxes: int = 100,
    min_reasoning_words: int = 20,
) -> dict:
    """Weighted spatial / semantic / reasoning / relevance score; each part in [0, 1] is a component."""
    basic = iou_components(text, gt, extra_info, coords, no_finding_score, max_boxes)
    truth = gt_boxes(gt)
    if not truth:
        return {**basic, "iou": basic["score"]}
    gold = _gold_terms(gt)
    gold_regions = {ANATOMY_OF[m] for m in ANATOMY_RE.findall(gold)}
    gold_kinds = {ABNORMALITY_OF[m] for m in ABNORMALITY_RE.findall(gold)}
    answer = answer_section(text)[:MAX_WORDS_CHARS].lower()
    think = tag_section(text, "think", allow_unclosed=False)
    think = think[:MAX_WORDS_CHARS].lower() if think is not None else ""
    said = answer + " " + think
    kinds_said = {ABNORMALITY_OF[m] for m in ABNORMALITY_RE.findall(said)}
    regions_said = {ANATOMY_OF[m] for m in ANATOMY_RE.findall(said)}

    importance = max((ANATOMY_IMPORTANCE[r] for r in gold_regions), default=1.0)
    names_finding = bool(kinds_said & gold_kinds) if gold_kinds else bool(kinds_said)
    names_region = bool(regions_said & gold_regions) if gold_regions else bool(regions_said)
    reasoning = 0.0
    if think:
        reasoning = (
            bool(_SYSTEMATIC.search(think)) + bool(_DIFFERENTIAL.search(think)) + (len(think.split()) >= min_reasoning_words)
        ) / 3
    severity = max((ABNORMALITY_SEVERITY[k] for k in gold_kinds), default=1.0)
    specific = basic["n_pred"] > 0 and bool(kinds_said)
    parts = {
        "spatial": basic["score"] * importance,
        "semantic": (names_finding + names_region + bool(DESCRIPTOR_RE.search(said))) / 3,
        "reasoning": reasoning,
        "relevance": severity * (specific + bool(_ACTION.search(answer))) / 2,
    }
    weights = WEIGHTS[variant]
    return {"score": sum(weights[k] * v for k, v in parts.items()), **parts, "iou": basic["score"]}


def _check(params: dict) -> None:
    if params.get("variant", "standard") not in WEIGHTS:
        raise ValueError(f"enhanced_grounding params.variant must be standard or reasoning, got {params['variant']!r}")
    if params.get("coords", "auto") not in COORDS:
        raise ValueError(f"enhanced_grounding params.coords must be one of {', '.join(COORDS)}, got {params['coords']!r}")
