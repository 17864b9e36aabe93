"""Multi-task rewards: a routed reward option scores each row with its own task's (or data
source's) terms, and every term still reaches the metrics over its own rows only."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from radgrpo.data.schema import encode_ground_truth
from radgrpo.engine.reward_metrics import reward_component_metrics
from radgrpo.rewards import score, validate_reward_config
from radgrpo.rewards.verl_entry import compute_score
from tests.conftest import CONF_DIR

MIX = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "reward" / "radvlm_tasks.yaml"))
BOX = encode_ground_truth("grounding", boxes=[[0.1, 0.2, 0.3, 0.4]])
REPORT = encode_ground_truth("report", report="Heart size is normal. No focal consolidation.")
LABELS = encode_ground_truth("classification", labels=["cardiomegaly", "edema"])


def test_the_radvlm_task_mix_is_a_valid_option():
    validate_reward_config(MIX)


def test_each_task_is_scored_by_its_own_terms():
    grounding = compute_score("vindr-cxr", "<think>x</think><answer>[0.1, 0.2, 0.3, 0.4]</answer>", BOX,
                              {"task": "grounding"}, **MIX)
    assert grounding["score"] == pytest.approx(1.0) and grounding["iou"] == 1.0
    assert grounding["rouge_l"] is None and grounding["label_f1"] is None and grounding["unrouted"] == 0.0

    text = "<think>x</think><answer>Heart size is normal. No focal consolidation.</answer>"
    report = compute_score("mimic", text, REPORT, {"task": "report"}, **MIX)
    assert report["score"] == pytest.approx(1.0) and report["iou"] is None and report["report_f1"] == 1.0

    answer = "The following abnormalities are present: cardiomegaly and pleural effusion."
    labels = compute_score("mimic-labels", f"<answer>{answer}</answer>", LABELS, None, **MIX)  # task from the truth
    assert labels["label_f1"] == pytest.approx(0.5) and labels["label_f1/precision"] == 0.5
    assert labels["score"] == pytest.approx(0.9 * 0.5)

    assert grounding.keys() == report.keys() == labels.keys()  # verl wants one key set per config
    metrics = reward_component_metrics([grounding, report, labels])
    assert metrics["reward/iou/mean"] == 1.0 and metrics["reward/report_f1/mean"] == 1.0  # own rows only
    assert metrics["reward/format/mean"] == pytest.approx(2 / 3)  # in every route: every row


def test_routes_by_data_source_with_a_default():
    config = {"name": "by_source", "route_by": "data_source",
              "routes": {"vindr-cxr": [{"name": "iou", "weight": 1.0}], "default": [{"name": "format", "weight": 1.0}]}}
    validate_reward_config(config)
    assert compute_score("vindr-cxr", "[0.1, 0.2, 0.3, 0.4]", BOX, {}, **config)["score"] == 1.0
    other = compute_score("padchest", "<think>a</think><answer>b</answer>", BOX, {}, **config)
    assert other["score"] == 1.0 and other["iou"] is None


def test_a_row_no_route_covers_scores_zero_and_is_counted():
    config = {"name": "g", "routes": {"grounding": [{"name": "iou", "weight": 1.0}]}}
    result = compute_score("mimic", "Heart size is normal.", REPORT, {"task": "report"}, **config)
    assert result == {"score": 0.0, "unrouted": 1.0, "iou": None, "iou/matched_iou": None, "iou/n_pred": None,
                      "iou/no_finding": None}


@pytest.mark.parametrize("config, message", [
    ({"terms": [{"name": "iou"}], "routes": {"grounding": [{"name": "iou"}]}}, "either reward.terms"),
    ({"route_by": "ability", "routes": {"grounding": [{"name": "iou"}]}}, "reward.route_by must be one of task"),
    ({"routes": {"grounding": [{"name": "iuo"}]}}, "unknown reward 'iuo'"),
    ({"routes": {"report": [{"name": "bleu", "params": {"n": 2}}]}}, r"reward.routes.report\[0\] \(bleu\): unknown params"),
    ({"routes": {}}, "reward.routes must map"),
])
def test_routing_mistakes_are_one_line(config, message):
    with pytest.raises(ValueError, match=message):
        validate_reward_config({"name": "x", **config})


@pytest.mark.parametrize("answer, expected", [
    ("The following abnormalities are present: cardiomegaly, edema and effusion.", 2 * 2 / 5),
    ("Cardiomegaly, edema.", 1.0),
    ("There are no findings on this Chest X-ray.", 0.0),
])
def test_label_f1(answer, expected):
    assert score("label_f1", f"<answer>{answer}</answer>", LABELS)["score"] == pytest.approx(expected)
    empty = encode_ground_truth("classification", labels=[])
    assert score("label_f1", answer, empty)["score"] == (1.0 if expected == 0.0 else 0.0)
