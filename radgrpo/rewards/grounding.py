"""`iou`: the seed-000 grounding reward (RadVLM-GRPO verl fork, `custom_reward/iou_reward.py`).

Seed 000 spec: perfect box match 1.0; partial overlap = IoU; correct "no finding" (ground truth
empty and the answer says there is no abnormality) 0.8; false positives and false negatives 0.0.
Boxes come from the `<answer>` section (`radgrpo.rewards.boxes` for the formats understood); "no
finding" is `radgrpo.data.answers.says_no_finding`, the rule prep writes ground truth with.

With several boxes the seed spec does not say how to combine; radgrpo uses RadVLM-GRPO's IoU soft
F1 with Hungarian matching, 2 * sum(matched IoU) / (n_pred + n_gt), which is the IoU itself for one
box each, 1.0 only for a perfect set, and charges every extra or missing box.
"""

from __future__ import annotations

from radgrpo.data.answers import says_no_finding
from radgrpo.rewards.boxes import COORDS, gt_boxes, match_boxes, parse_boxes
from radgrpo.rewards.registry import register
from radgrpo.rewards.text import answer_section

def image_size_of(gt: dict, extra_info: dict):
    """[width, height] in pixels from extra_info (`image_size`, or `width`/`height`) or the ground truth."""
    size = extra_info.get("image_size") or gt.get("image_size")
    if size is None and "width" in extra_info and "height" in extra_info:
        size = (extra_info["width"], extra_info["height"])
    return size


def iou_components(text: str, gt: dict, extra_info: dict, coords: str, no_finding_score: float, max_boxes: int) -> dict:
    """The `iou` reward's result dict; shared with `enhanced_grounding`, which builds on it."""
    truth = gt_boxes(gt)
    if truth is None:
        return {"score": 0.0, "reason": f"ground truth has no box list (task {gt.get('task')!r})"}
    answer = answer_section(text)
    pred, n_pred, reason = parse_boxes(answer, coords, image_size_of(gt, extra_info), max_boxes)
    out = {"n_pred": float(n_pred), "matched_iou": 0.0, "no_finding": 0.0}
    if not truth:
        if n_pred:
            return {**out, "score": 0.0, "reason": "false positive: boxes given for a no-finding image"}
        hit = says_no_finding(answer)
        return {**out, "score": no_finding_score if hit else 0.0, "no_finding": float(hit)}
    if not pred:
        return {**out, "score": 0.0, "reason": reason or "false negative: no box in the answer"}
    ious = match_boxes(pred, truth)
    out["matched_iou"] = sum(ious) / len(ious)
    return {**out, "score": 2.0 * sum(ious) / (n_pred + len(truth))}


def _check(params: dict) -> None:
    if params.get("coords", "auto") not in COORDS:
        raise ValueError(f"iou params.coords must be one of {', '.join(COORDS)}, got {params['coords']!r}")


@register("iou", low=0.0, high=1.0, components=("matched_iou", "n_pred", "no_finding"), check_config=_check)
def iou_reward(
    text: str, gt: dict, extra_info: dict, coords: str = "auto", no_finding_score: float = 0.8, max_boxes: int = 100
) -> dict:
    """Seed-000 IoU reward in [0, 1]; components: mean IoU of matched pairs, boxes written,
    1 when a correct "no finding" was rewarded."""
    return iou_components(text, gt, extra_info, coords, no_finding_score, max_boxes)
