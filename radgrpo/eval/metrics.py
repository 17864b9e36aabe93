"""Benchmark metrics of the radiology papers, per task, computed from generations and ground truths.

Every metric reads the model answer through `radgrpo.rewards` (answer section, box grammar, choice
extraction, "no finding" rule), so an evaluation number and a training reward mean the same thing.
Where a paper's protocol differs from the reward, the protocol wins and is cited:

- grounding
  - `radvlm_map@0.5` and `radvlm_avg_iou`: RadVLM's `evaluate_boxes`
    (radvlm/evaluation/compute_metrics_tasks.py): predictions in output order, each matched to its
    argmax-IoU ground-truth box, a true positive when IoU >= 0.5 and that box is unused; per-sample
    VOC all-point AP; mAP = mean over samples, 0 for a sample with no prediction or no ground truth;
    avg IoU = mean over every (prediction, ground truth) pair of every sample.
  - `map@0.5`: COCO-style AP at IoU 0.5 over the whole set (pycocotools' matching and 101-point
    interpolation, one category, confidence = output order), comparable with detection papers.
  - `mean_iou`: mean over samples with boxes of the Hungarian-matched IoU (the reward's
    `matched_iou`); `acc@t`: share of samples whose first box has IoU >= t with a ground-truth box,
    a no-finding sample counting as correct when the answer gives no box and says so (the reward's
    rule).
- classification: RadVLM's `evaluate_classification`: a label is predicted when its name occurs in
  the lowercased answer; micro and macro precision, recall and F1 from scikit-learn.
- mcqa: MedVLThinker reports strict accuracy (the `<think>/<answer>` format must hold, then the
  answer must be right) and a lenient regrade (the choice read anywhere in the output).
- report: corpus BLEU-4 (sacrebleu, the library of the `bleu` reward) and mean ROUGE-L F1; with the
  model-based rewards' models or endpoints given (radgrpo.eval.model_metrics), RadCliQ-v1 and its
  components (RadGraph F1, BERTScore, CheXbert embedding similarity) and GREEN: per-sample values
  computed once through the reward server or judge, averaged over the samples it scored (a sample
  whose call timed out or failed has no value; such fallbacks are counted, not averaged in).

`strip_reasoning` is RadVLM's `--r1`: scoring only what follows the reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from radgrpo.rewards.boxes import Box, gt_boxes, iou, match_boxes, parse_boxes
from radgrpo.rewards.format import follows_format
from radgrpo.rewards.grounding import image_size_of, says_no_finding
from radgrpo.rewards.mcqa import extract_choice, gold_label
from radgrpo.rewards.text import answer_section, tag_section
from radgrpo.rewards.text_metrics import reference_text, rouge_l_f1

ACCURACY_IOUS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class Record:
    """One scored generation: the completion text, its decoded ground truth, the row's extra_info and
    its model-based metric values (None where the server call fell back)."""

    completion: str
    ground_truth: dict
    extra_info: dict
    scores: Mapping[str, float | None] = field(default_factory=dict)


def strip_reasoning(text: str) -> str:
    """The text after the last `</think>` (RadVLM's `--r1`); unchanged when there is no reasoning."""
    end = text.rfind("</think>")
    return text[end + len("</think>"):].strip() if end >= 0 else text


# ----- grounding ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoxSample:
    pred: list[Box]
    gt: list[Box]
    said_no_finding: bool


def box_sample(record: Record) -> BoxSample:
    answer = answer_section(record.completion)
    pred, _, _ = parse_boxes(answer, "auto", image_size_of(record.ground_truth, record.extra_info))
    return BoxSample(pred, gt_boxes(record.ground_truth) or [], says_no_finding(answer))


def voc_average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+), as RadVLM's `compute_average_precision`."""
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([0.0], precision, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def radvlm_sample_ap(sample: BoxSample, threshold: float = 0.5) -> float:
    if not sample.pred or not sample.gt:
        return 0.0
    ious = np.array([[iou(p, g) for g in sample.gt] for p in sample.pred])
    used: set[int] = set()
    tp = np.zeros(len(sample.pred))
    for i in range(len(sample.pred)):
        j = int(np.argmax(ious[i]))
        if ious[i, j] >= threshold and j not in used:
            tp[i] = 1.0
            used.add(j)
    tp_cum = np.cumsum(tp)
    fp_cum = np.cumsum(1.0 - tp)
    return voc_average_precision(tp_cum / len(sample.gt), tp_cum / (tp_cum + fp_cum))


def radvlm_avg_iou(samples: Sequence[BoxSample]) -> float:
    total = sum(iou(p, g) for s in samples if s.pred and s.gt for p in s.pred for g in s.gt)
    pairs = sum(len(s.pred) * len(s.gt) for s in samples if s.pred and s.gt)
    return total / pairs if pairs else 0.0


def coco_ap(samples: Sequence[BoxSample], threshold: float = 0.5, max_dets: int = 100) -> float:
    """COCO AP at one IoU threshold, one category, area 'all' (pycocotools' COCOeval logic).

    A VLM gives no confidence, so the k-th box of an answer gets score -k: within an image boxes are
    ranked in output order; across images equal ranks tie and keep image order (stable sort, as
    pycocotools' mergesort). Returns -1 when no sample has a ground-truth box (pycocotools' value).
    """
    scores, matched = [], []
    n_gt = 0
    for sample in samples:
        n_gt += len(sample.gt)
        used = [False] * len(sample.gt)
        for k, box in enumerate(sample.pred[:max_dets]):
            best, best_j = min(threshold, 1 - 1e-10), -1
            for j, gt in enumerate(sample.gt):
                value = iou(box, gt)
                if used[j] or value < best:
                    continue
                best, best_j = value, j
            if best_j >= 0:
                used[best_j] = True
            scores.append(-k)
            matched.append(best_j >= 0)
    if n_gt == 0:
        return -1.0
    order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
    tp = np.asarray(matched, dtype=float)[order]
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = tp_cum / n_gt
    precision = np.maximum.accumulate((tp_cum / (tp_cum + fp_cum + np.spacing(1)))[::-1])[::-1]
    at = np.searchsorted(recall, np.linspace(0.0, 1.0, 101), side="left")
    # a recall level the detections never reach has precision 0
    interpolated = [precision[i] if i < len(precision) else 0.0 for i in at]
    return float(np.mean(interpolated))


def accuracy_at_iou(sample: BoxSample, threshold: float) -> float:
    if not sample.gt:
        return float(not sample.pred and sample.said_no_finding)
    if not sample.pred:
        return 0.0
    return float(max(iou(sample.pred[0], g) for g in sample.gt) >= threshold)


def grounding_metrics(records: Sequence[Record]) -> dict[str, float]:
    samples = [box_sample(r) for r in records]
    with_boxes = [s for s in samples if s.gt]
    matched = [sum(m) / len(m) if (m := match_boxes(s.pred, s.gt)) else 0.0 for s in with_boxes]
    out = {
        "radvlm_map@0.5": float(np.mean([radvlm_sample_ap(s) for s in samples])),
        "radvlm_avg_iou": radvlm_avg_iou(samples),
        "map@0.5": coco_ap(samples),
        "mean_iou": float(np.mean(matched)) if matched else 0.0,
    }
    for t in ACCURACY_IOUS:
        out[f"acc@{t}"] = float(np.mean([accuracy_at_iou(s, t) for s in samples]))
    return out


# ----- classification ----------------------------------------------------------------------------
def classification_metrics(records: Sequence[Record], labels: Sequence[str] | None = None) -> dict[str, float]:
    """Micro and macro precision, recall and F1 over the label set (the given labels and every gold
    label), a label counting as predicted when its name appears in the answer (RadVLM's matching).

    scikit-learn's `precision_recall_fscore_support(average=..., zero_division=0)` computes the same
    for two or more labels (one label it reads as a binary target of 0/1 classes); it is not used
    because with scikit-learn installed transformers imports it in every process that loads a model
    (0.7 CPU-s each, eight processes per run)."""
    gold = [[str(x).lower() for x in r.ground_truth.get("labels") or []] for r in records]
    names = sorted({name.lower() for name in (labels or [])} | {x for g in gold for x in g})
    if not names:
        return {}
    outputs = [answer_section(r.completion).lower() for r in records]
    predicted = np.array([[name in text for name in names] for text in outputs])
    actual = np.array([[name in g for name in names] for g in gold])
    true_pos = (predicted & actual).sum(axis=0)
    per_label = (true_pos, predicted.sum(axis=0), actual.sum(axis=0))
    micro = [float(x.sum()) for x in per_label]
    out = {}
    for average, (tp, n_pred, n_gold) in (("micro", micro), ("macro", per_label)):
        p, r, f = _ratio(tp, n_pred), _ratio(tp, n_gold), _ratio(2 * tp, n_pred + n_gold)
        out.update({f"precision_{average}": float(np.mean(p)), f"recall_{average}": float(np.mean(r)),
                    f"f1_{average}": float(np.mean(f))})
    return out


def _ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


# ----- multiple choice ---------------------------------------------------------------------------
def mcqa_correct(record: Record, strict: bool) -> float:
    gold = gold_label(record.ground_truth)
    if gold is None:
        return 0.0
    options = record.ground_truth.get("options") if isinstance(record.ground_truth.get("options"), dict) else None
    if strict:
        if not follows_format(record.completion):
            return 0.0
        return float(extract_choice(tag_section(record.completion, "answer") or "", options) == gold)
    return float(extract_choice(record.completion, options) == gold)


def mcqa_metrics(records: Sequence[Record]) -> dict[str, float]:
    return {
        "accuracy_strict": float(np.mean([mcqa_correct(r, strict=True) for r in records])),
        "accuracy_lenient": float(np.mean([mcqa_correct(r, strict=False) for r in records])),
    }


# ----- report generation -------------------------------------------------------------------------
def report_metrics(records: Sequence[Record]) -> dict[str, float]:
    from sacrebleu.metrics import BLEU

    pairs = [(answer_section(r.completion), reference_text(r.ground_truth) or "") for r in records]
    bleu = BLEU().corpus_score([h for h, _ in pairs], [[ref for _, ref in pairs]]).score / 100.0
    out = {"bleu4": bleu, "rouge_l": float(np.mean([rouge_l_f1(h, ref) for h, ref in pairs]))}
    for name in sorted({k for r in records for k in r.scores}):
        values = [v for r in records if (v := r.scores.get(name)) is not None]
        if values:
            out[name] = float(np.mean(values))
    return out


METRICS_BY_TASK: dict[str, Callable[[Sequence[Record]], dict[str, float]]] = {
    "grounding": grounding_metrics,
    "classification": classification_metrics,
    "mcqa": mcqa_metrics,
    "report": report_metrics,
}


def bootstrap_ci(records: Sequence[Record], metrics: Callable[[Sequence[Record]], dict[str, float]],
                 n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of every metric, resampling samples with replacement (seeded).

    The whole metric is recomputed on each resample, so set-level metrics (COCO AP, micro F1, corpus
    BLEU) get honest intervals, not the spread of a per-sample mean.
    """
    if not records:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        picked = [records[i] for i in rng.integers(0, len(records), len(records))]
        for name, value in metrics(picked).items():
            draws.setdefault(name, []).append(value)
    tail = (1.0 - level) / 2 * 100
    return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for name, v in draws.items()}
