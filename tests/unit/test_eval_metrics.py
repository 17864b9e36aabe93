"""Evaluation metrics: hand-computed cases, and COCO AP against pycocotools on random box sets."""

from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest

from radgrpo.eval.metrics import (
    BoxSample,
    Record,
    bootstrap_ci,
    classification_metrics,
    coco_ap,
    grounding_metrics,
    mcqa_metrics,
    radvlm_avg_iou,
    radvlm_sample_ap,
    report_metrics,
    strip_reasoning,
)


def grounding(completion: str, boxes) -> Record:
    return Record(completion, {"task": "grounding", "boxes": boxes}, {})


def test_radvlm_ap_hand_computed():
    gt = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    # first box hits gt 0, second misses, third hits gt 1: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    sample = BoxSample([gt[0], (0.9, 0.0, 1.0, 0.1), gt[1]], gt, False)
    # all-point AP: 0.5 * 1 + 0.5 * 2/3
    assert radvlm_sample_ap(sample) == pytest.approx(0.5 + 1 / 3)
    # a second prediction on an already used box is a false positive (RadVLM: no fallback)
    assert radvlm_sample_ap(BoxSample([gt[0], gt[0]], [gt[0]], False)) == pytest.approx(1.0)
    assert radvlm_sample_ap(BoxSample([], gt, False)) == 0.0
    assert radvlm_sample_ap(BoxSample([gt[0]], [], True)) == 0.0


def test_radvlm_avg_iou_is_mean_over_all_pairs():
    a, b = (0.0, 0.0, 0.5, 0.5), (0.25, 0.0, 0.75, 0.5)  # IoU 1/3
    samples = [BoxSample([a], [a, b], False), BoxSample([], [a], False)]
    assert radvlm_avg_iou(samples) == pytest.approx((1.0 + 1 / 3) / 2)


def test_grounding_metrics_accuracy_and_no_finding():
    records = [
        grounding("<answer>[0.0, 0.0, 0.5, 0.5]</answer>", [[0.0, 0.0, 0.5, 0.5]]),
        grounding("<answer>[0.25, 0.0, 0.75, 0.5]</answer>", [[0.0, 0.0, 0.5, 0.5]]),  # IoU 1/3
        grounding("<answer>No abnormalities found.</answer>", []),
        grounding("<answer>[0.1, 0.1, 0.2, 0.2]</answer>", []),  # false positive on no-finding
    ]
    m = grounding_metrics(records)
    assert m["acc@0.3"] == pytest.approx(3 / 4)  # 1, 1/3 >= 0.3, correct no-finding
    assert m["acc@0.5"] == pytest.approx(2 / 4)
    assert m["acc@0.7"] == pytest.approx(2 / 4)
    assert m["mean_iou"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert m["radvlm_map@0.5"] == pytest.approx(1 / 4)


def test_coco_ap_matches_pycocotools_on_random_sets():
    pycocotools = pytest.importorskip("pycocotools.cocoeval")
    from pycocotools.coco import COCO

    rng = random.Random(0)
    for trial in range(20):
        samples = []
        for _ in range(rng.randint(1, 12)):
            def box():
                x, y = rng.random() * 0.8, rng.random() * 0.8
                return (x, y, x + 0.05 + rng.random() * 0.2, y + 0.05 + rng.random() * 0.2)
            gt = [box() for _ in range(rng.randint(0, 3))]
            pred = [g if rng.random() < 0.4 else box() for g in gt] + [box() for _ in range(rng.randint(0, 3))]
            rng.shuffle(pred)
            samples.append(BoxSample(pred, gt, False))
        ours = coco_ap(samples)
        theirs = _pycocotools_ap50(samples, pycocotools.COCOeval, COCO)
        assert ours == pytest.approx(theirs, abs=1e-6), trial


def _pycocotools_ap50(samples, COCOeval, COCO) -> float:
    scale = 1000.0  # pycocotools works in pixels; IoU is scale free
    images, annotations, detections = [], [], []
    for i, s in enumerate(samples):
        images.append({"id": i + 1, "width": scale, "height": scale})
        for g in s.gt:
            w, h = (g[2] - g[0]) * scale, (g[3] - g[1]) * scale
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": [g[0] * scale, g[1] * scale, w, h], "area": w * h, "iscrowd": 0})
        for k, p in enumerate(s.pred):
            detections.append({"image_id": i + 1, "category_id": 1, "score": float(-k),
                               "bbox": [p[0] * scale, p[1] * scale, (p[2] - p[0]) * scale, (p[3] - p[1]) * scale]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "finding"}]}
        gt.createIndex()
        if not detections:
            return 0.0 if annotations else -1.0
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, 0, 0, -1]  # IoU 0.5, every recall level, area all, 100 dets
    return float(precision.mean()) if (precision > -1).any() else -1.0


def test_classification_micro_macro_hand_computed():
    records = [
        Record("Cardiomegaly and effusion.", {"task": "classification", "labels": ["Cardiomegaly"]}, {}),
        Record("Effusion.", {"task": "classification", "labels": ["Effusion", "Cardiomegaly"]}, {}),
    ]
    m = classification_metrics(records)
    # labels: cardiomegaly, effusion. TP: cardio 1 (rec 1), effusion 1 (rec 2); FP: effusion (rec 1);
    # FN: cardio (rec 2). micro P = 2/3, R = 2/3.
    assert m["precision_micro"] == pytest.approx(2 / 3)
    assert m["recall_micro"] == pytest.approx(2 / 3)
    # per label: cardio P 1 R 1/2 F 2/3; effusion P 1/2 R 1 F 2/3
    assert m["precision_macro"] == pytest.approx(0.75)
    assert m["f1_macro"] == pytest.approx(2 / 3)


def test_classification_a_label_nobody_names_scores_zero_in_the_macro_mean():
    records = [Record("<answer>Edema</answer>", {"task": "classification", "labels": ["Edema"]}, {})]
    m = classification_metrics(records, labels=["Edema", "Pneumothorax"])
    # edema P = R = F = 1; pneumothorax neither gold nor predicted: 0/0 counts 0 (zero_division=0)
    assert (m["precision_micro"], m["recall_micro"], m["f1_micro"]) == (1.0, 1.0, 1.0)
    assert (m["precision_macro"], m["recall_macro"], m["f1_macro"]) == (0.5, 0.5, 0.5)
    # nothing gold, nothing predicted: no true positive anywhere
    nothing = classification_metrics([Record("<answer>normal</answer>", {"task": "classification", "labels": []}, {})],
                                      labels=["Edema"])
    assert nothing["f1_micro"] == 0.0 and nothing["precision_macro"] == 0.0


def test_mcqa_strict_and_lenient():
    gt = {"task": "mcqa", "label": "B", "answer": "Pneumonia", "options": {"A": "Edema", "B": "Pneumonia"}}
    records = [
        Record("<think>consolidation</think><answer>B</answer>", gt, {}),
        Record("The answer is B.", gt, {}),  # right, but not in the required format
        Record("<think>x</think><answer>A</answer>", gt, {}),
    ]
    m = mcqa_metrics(records)
    assert m["accuracy_strict"] == pytest.approx(1 / 3)
    assert m["accuracy_lenient"] == pytest.approx(2 / 3)


def test_report_metrics_identical_and_disjoint():
    same = Record("No acute cardiopulmonary process.", {"task": "report", "report": "No acute cardiopulmonary process."}, {})
    other = Record("zebra", {"task": "report", "report": "Large left pleural effusion."}, {})
    assert report_metrics([same]) == {"bleu4": pytest.approx(1.0), "rouge_l": pytest.approx(1.0)}
    assert report_metrics([other])["rouge_l"] == 0.0


def test_strip_reasoning():
    assert strip_reasoning("<think>maybe [0.1,0.1,0.2,0.2]</think> No finding") == "No finding"
    assert strip_reasoning("plain") == "plain"


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    gt = {"task": "mcqa", "label": "A", "options": {"A": "x", "B": "y"}}
    records = [Record("A" if i % 3 else "B", gt, {}) for i in range(30)]
    first = bootstrap_ci(records, mcqa_metrics, n_resamples=200, seed=3)
    assert first == bootstrap_ci(records, mcqa_metrics, n_resamples=200, seed=3)
    low, high = first["accuracy_lenient"]
    assert low < 20 / 30 < high


def test_generation_store_drops_a_torn_line_and_resumes(tmp_path):
    from radgrpo.eval.store import GenerationStore

    path = tmp_path / "g.jsonl"
    store = GenerationStore(path)
    store.append({"index": 0, "repeat": 0, "completion": "a"})
    store.append({"index": 1, "repeat": 0, "completion": "b"})
    with open(path, "a") as fh:
        fh.write('{"index": 2, "repeat": 0, "compl')  # what a kill mid-write leaves
    again = GenerationStore(path)
    assert [r["index"] for r in again.records()] == [0, 1] and not again.has(2, 0)
    again.append({"index": 2, "repeat": 0, "completion": "c"})
    assert [r["completion"] for r in GenerationStore(path).records()] == ["a", "b", "c"]
