"""enhanced_grounding, RadCliQ combiner, GREEN parser, model-path validation, per-component metrics."""

import math

import pytest

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import score, validate_reward_config
from radgrpo.rewards.green import green_score, parse_green
from radgrpo.rewards.radcliq import bleu2, radcliq

GT_BOX = encode_ground_truth("grounding", boxes=[[0.1, 0.1, 0.5, 0.5]], labels=["Pleural effusion"])


def test_enhanced_grounding_weights_the_four_criteria():
    text = (
        "<think>First assess both lungs, then consider the differential: effusion versus consolidation. "
        "The left costophrenic angle is blunted by a dense opacity tracking along the pleural surface.</think>"
        "<answer>Moderate pleural effusion at [0.1, 0.1, 0.5, 0.5]</answer>"
    )
    out = score("enhanced_grounding", text, GT_BOX)
    # spatial: IoU 1 x pleura importance 0.8; semantic: finding + region + descriptor = 1;
    # reasoning: systematic + differential + >= 20 words = 1; relevance: effusion severity 0.7 x (1+1)/2
    assert out["spatial"] == pytest.approx(0.8) and out["semantic"] == 1.0 and out["reasoning"] == 1.0
    assert out["relevance"] == pytest.approx(0.7)
    assert out["score"] == pytest.approx(0.4 * 0.8 + 0.3 + 0.2 + 0.1 * 0.7)
    reasoning_variant = score("enhanced_grounding", text, GT_BOX, variant="reasoning")
    assert reasoning_variant["score"] == pytest.approx(0.3 * 0.8 + 0.4 + 0.2 + 0.1 * 0.7)
    bare = score("enhanced_grounding", "<answer>[0.1, 0.1, 0.5, 0.5]</answer>", GT_BOX)
    assert bare["score"] == pytest.approx(0.4 * 0.8)  # no words, no reasoning


def test_enhanced_grounding_falls_back_to_iou_for_no_finding():
    out = score("enhanced_grounding", "<answer>No abnormality.</answer>", encode_ground_truth("grounding", boxes=[]))
    assert out["score"] == pytest.approx(0.8) and out["iou"] == pytest.approx(0.8)


def test_radcliq_v1_and_v0_at_the_means_are_the_intercepts():
    assert radcliq(0.53792312, 0.61757256, 0.76479421, 0.44738335, "v1") == pytest.approx(2.5e-10, abs=1e-12)
    assert radcliq(0.53983760, 0.63125496, 0.77167979, 0.46073721, "v0") == pytest.approx(1.64166667)


def test_radcliq_v1_hand_computed():
    # one sigma above the mean on every input: sum of the coefficients + intercept
    x = [m + s for m, s in zip((0.53792312, 0.61757256, 0.76479421, 0.44738335), (0.30282584, 0.22430938, 0.25394391, 0.29892717))]
    assert radcliq(*x, version="v1") == pytest.approx(-0.37708368 - 0.37030010 - 0.25261622 + 4.3e-12 + 2.5e-10)
    # perfect report on v0: x = [1, 1, 1, 1]
    z = [(1 - m) / s for m, s in zip((0.53983760, 0.63125496, 0.77167979, 0.46073721), (0.30183444, 0.22466951, 0.24750334, 0.30336671))]
    expected = -0.47962526 * z[0] - 0.67621705 * z[1] - 0.46366575 * z[2] + 0.21658619 * z[3] + 1.64166667
    assert radcliq(1, 1, 1, 1, "v0") == pytest.approx(expected)


def test_bleu2_hand_computed():
    # hyp "a b c d", ref "a b c e": p1 = 3/4, p2 = 2/3, no brevity penalty -> sqrt(1/2)
    assert bleu2("a b c d", "a b c e") == pytest.approx(math.sqrt(0.75 * 2 / 3))
    assert bleu2("a", "a b") == 0.0


def test_radcliq_short_text_and_missing_think_give_minus_three():
    gt = encode_ground_truth("report", report="No acute cardiopulmonary process.")
    server = {"url": "http://127.0.0.1:9"}
    assert score("radcliq", "ok", gt, server=server)["score"] == -3.0
    assert score("radcliq", "No acute process at all.", gt, server=server, thinking=True)["score"] == -3.0


def test_radcliq_config_needs_existing_model_paths_and_server(tmp_path):
    config = {"name": "radcliq", "terms": [{"name": "radcliq", "weight": 1.0, "params": {}}], "server": {"url": None}}
    with pytest.raises(ValueError, match=r"reward\.models\.radgraph is not set"):
        validate_reward_config({**config, "models": {"radgraph": None, "chexbert": None, "bertscore": None}})
    models = {"radgraph": str(tmp_path), "chexbert": str(tmp_path / "chexbert.pth"), "bertscore": str(tmp_path)}
    with pytest.raises(ValueError, match=r"reward\.models\.chexbert does not exist: .*chexbert.pth"):
        validate_reward_config({**config, "models": models})
    (tmp_path / "chexbert.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"reward\.server\.url is not set"):
        validate_reward_config({**config, "models": models})
    validate_reward_config({**config, "models": models, "server": {"url": "http://127.0.0.1:8765"}})


GREEN_REPLY = """[Explanation]:
The candidate misses the effusion.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 1. Cardiomegaly graded mild
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 3.

[Matched Findings]:
2. No pneumothorax; Cardiomegaly
"""


def test_green_parser_and_score():
    counts, matched = parse_green(GREEN_REPLY)
    assert counts == {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0, "f": 0} and matched == 2
    assert green_score(counts, matched) == pytest.approx(2 / 4)  # insignificant errors do not count
    assert green_score({"a": 3}, 0) == 0.0
    assert parse_green("I cannot judge this.") is None


def test_green_config_needs_judge_url_and_model():
    config = {"name": "green", "terms": [{"name": "green", "weight": 1.0, "params": {}}]}
    with pytest.raises(ValueError, match=r"reward\.judge\.url is not set"):
        validate_reward_config({**config, "judge": {"url": None, "model": None}})
    with pytest.raises(ValueError, match=r"reward\.judge\.model is not set"):
        validate_reward_config({**config, "judge": {"url": "http://127.0.0.1:8000", "model": None}})


def test_green_judge_unreachable_falls_back():
    gt = encode_ground_truth("report", report="Left pleural effusion.")
    judge = {"url": "http://127.0.0.1:9", "model": "green", "timeout": 0.5, "retries": 0}
    out = score("green", "Normal chest.", gt, judge=judge, fallback_score=0.25)
    assert out["score"] == 0.25 and out["judge_failed"] == 1.0
