"""`format`, the registry's totality guarantees, `verl_entry.compute_score` and config validation."""

import math

import pytest
import yaml
from pathlib import Path

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import REGISTRY, register, score, validate_reward_config
from radgrpo.rewards.verl_entry import compute_score

CONF = Path(__file__).resolve().parents[2] / "conf" / "reward"
GT = encode_ground_truth("grounding", boxes=[[0.1, 0.1, 0.5, 0.5]])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think><answer>b</answer>", 1.0),
        ("  <think>a</think>\n\n<answer>b</answer>\n", 1.0),
        ("<answer>b</answer>", 0.0),
        ("<think>a</think> text <answer>b</answer>", 0.0),
        ("<think>a</think><answer>b</answer> trailing", 0.0),
        ("<answer>b</answer><think>a</think>", 0.0),
        ("<think>a</think><answer>b</answer></answer>", 0.0),  # the regex's loophole
        ("<think><think>a</think></think><answer>b</answer>", 0.0),
    ],
)
def test_format_think_answer(text, expected):
    assert score("format", text, GT)["score"] == expected


def test_format_medgemma_pairs_and_non_strict():
    pairs = [["<start_working_out>", "<end_working_out>"], ["<SOLUTION>", "</SOLUTION>"]]
    text = "<start_working_out>opacity<end_working_out><SOLUTION>B</SOLUTION>"
    assert score("format", text, GT, pairs=pairs)["score"] == 1.0
    assert score("format", "Sure! " + text, GT, pairs=pairs)["score"] == 0.0
    assert score("format", "Sure! " + text, GT, pairs=pairs, strict=False)["score"] == 1.0


def test_a_failing_reward_is_reported_not_raised():
    @register("_test_broken", low=-1.0, high=1.0, components=("part",))
    def broken(text, gt, extra_info):
        raise RuntimeError("boom")

    @register("_test_nan", low=0.0, high=1.0, components=("part",))
    def nan(text, gt, extra_info):
        return {"score": math.nan, "part": math.inf}

    try:
        assert score("_test_broken", "x", GT) == {"score": -1.0, "part": 0.0, "reason": "RuntimeError: boom"}
        out = score("_test_nan", "x", GT)
        assert out["score"] == 0.0 and out["part"] == 0.0 and "replaced" in out["reason"]
    finally:
        del REGISTRY["_test_broken"], REGISTRY["_test_nan"]


def test_unknown_reward_is_a_config_error():
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        score("nope", "x", GT)


def test_compute_score_weights_terms_and_names_components():
    terms = [{"name": "iou", "weight": 0.9, "params": {}}, {"name": "format", "weight": 0.1, "params": {}}]
    good = compute_score("vindr", "<think>a</think><answer>[0.1, 0.1, 0.3, 0.5]</answer>", GT, {}, terms=terms)
    bad = compute_score("vindr", None, GT, None, terms=terms)
    assert good == pytest.approx(
        {"score": 0.9 * 0.5 + 0.1, "iou": 0.5, "iou/matched_iou": 0.5, "iou/n_pred": 1.0, "iou/no_finding": 0.0, "format": 1.0}
    )
    assert set(bad) == set(good) and bad["score"] == 0.0
    assert all(isinstance(v, float) for v in bad.values())


def test_compute_score_labels_repeated_rewards_by_key():
    terms = [
        {"name": "format", "weight": 0.5, "params": {}},
        {"name": "format", "key": "format_solution", "weight": 0.5, "params": {"pairs": [["<SOLUTION>", "</SOLUTION>"]]}},
    ]
    out = compute_score("x", "<SOLUTION>B</SOLUTION>", GT, terms=terms)
    assert out == {"score": 0.5, "format": 0.0, "format_solution": 1.0}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"name": "x", "terms": []}, "reward.terms must be a non-empty list"),
        ({"name": "x", "terms": [{"name": "bleu_typo"}]}, "unknown reward 'bleu_typo'"),
        ({"name": "x", "terms": [{"name": "iou", "weight": "heavy"}]}, r"reward.terms\[0\].weight"),
        ({"name": "x", "terms": [{"name": "iou", "params": {"coord": "unit"}}]}, r"unknown params \['coord'\]"),
        ({"name": "x", "terms": [{"name": "iou", "params": {"coords": "inches"}}]}, "params.coords must be one of"),
        ({"name": "x", "terms": [{"name": "format"}, {"name": "format"}]}, "duplicate term key 'format'"),
    ],
)
def test_validate_reward_config_names_the_key_to_fix(config, message):
    with pytest.raises(ValueError, match=message):
        validate_reward_config(config)


def _options():
    return sorted(CONF.glob("*.yaml"))


@pytest.mark.parametrize("path", _options(), ids=lambda p: p.stem)
def test_every_reward_option_is_self_contained(path):
    config = yaml.safe_load(path.read_text())
    assert config["name"] == path.stem
    lists = list(config["routes"].values()) if "routes" in config else [config["terms"]]
    terms = [t for listed in lists for t in listed]
    assert terms and all({"name", "weight", "params"} <= set(t) for t in terms)
    needs_local_setup = any(REGISTRY[t["name"]].check_config and t["name"] in ("radcliq", "green") for t in terms)
    if needs_local_setup:
        with pytest.raises(ValueError, match=r"reward\.\S+ is not set"):
            validate_reward_config(config)
    else:
        validate_reward_config(config)
        out = compute_score("any", "<think>x</think><answer>B</answer>", GT, {}, **{k: v for k, v in config.items() if k != "name"})
        assert math.isfinite(out["score"])
