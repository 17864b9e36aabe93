"""Property test of every reward: arbitrary and adversarial outputs and ground truths never raise,
give a finite score in the reward's documented range with the same keys every time, and are
deterministic.

Per reward: hypothesis examples (shrinking to a minimal failing case; RADGRPO_PROPERTY_EXAMPLES,
default 400) plus 5,000 strings from a seeded generator over the same adversarial alphabet
(hypothesis costs ~3 ms per example here, which for 12 rewards x 5,000 would blow the test budget),
plus the extreme inputs neither would build: 10,000 boxes, a megabyte of text, deep nesting."""

import math
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import REGISTRY, score

EXAMPLES = int(os.environ.get("RADGRPO_PROPERTY_EXAMPLES", "400"))
FUZZ = 5000
UNREACHABLE = {"url": "http://127.0.0.1:9", "timeout": 0.2, "retries": 0}
# Model-based rewards are exercised through their fallback path: no server runs in unit tests.
PARAMS = {
    "radcliq": {"server": UNREACHABLE},
    "green": {"judge": {**UNREACHABLE, "model": "green"}},
}

FRAGMENTS = [
    "<think>", "</think>", "<answer>", "</answer>", "<SOLUTION>", "</SOLUTION>", "<start_working_out>",
    "<end_working_out>", "<|box_start|>", "<|box_end|>", "[0.1, 0.2, 0.5, 0.6]", "[10%, 20%, 50%, 60%]",
    "[100, 200, 500, 600]", "(100,200),(500,600)", "[nan, inf, -inf, 1e309]", "[1e999, 0, 1, 1]",
    "[-5, -5, 9e300, 9e300]", "[0, 0, 0, 0]", "NaN", "inf", "\\boxed{B}", "\\boxed{", "Answer: B", "B.",
    "(C)", "A, B, C", "No abnormalities.", "pleural effusion", "no pneumothorax", "left lung", "%", ".",
    "\n", " ", "\x00", "\ud7ff", "🫁", "ß", "{", "}", "[", "]", '{"bbox_2d": [1, 2, 3, 4]}',
]
TEXTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=40).map("".join)
GT_VALUES = [
            encode_ground_truth("grounding", boxes=[[0.1, 0.2, 0.5, 0.6]], labels=["effusion"]),
            encode_ground_truth("grounding", boxes=[]),
            encode_ground_truth("report", report="Small left pleural effusion. No pneumothorax."),
            encode_ground_truth("mcqa", label="B", answer="Pneumonia", options={"A": "Normal", "B": "Pneumonia"},
                                explanation="consolidation", evidence="right lower lobe consolidation"),
            encode_ground_truth("vqa", answer="<answer>yes</answer>", reasoning="effusion in the left lung"),
            [[0.1, 0.1, 0.2, 0.2]], [], "B", "", None, "[", "{}", '{"task": "grounding", "boxes": "x"}',
            {"task": "grounding", "boxes": [[float("nan")] * 4]}, {"task": "grounding", "boxes": [["a", 1, 2, 3]]},
            {"task": "mcqa", "label": 3, "options": "x"}, {"kg": {"entities": [[1]], "relations": 5}},
]
GROUND_TRUTHS = st.one_of(st.sampled_from(GT_VALUES), st.text(max_size=30))
EXTRA_INFOS = [None, {}, {"image_size": [1000, 800]}, {"image_size": [0, -1]}, {"width": "x", "height": 2}]
NAMES = sorted(name for name in REGISTRY if not name.startswith("_"))


def check(name, text, gt, extra_info=None):
    reward = REGISTRY[name]
    first = score(name, text, gt, extra_info, **PARAMS.get(name, {}))
    assert math.isfinite(first["score"]) and reward.low <= first["score"] <= reward.high
    assert set(first) - {"reason"} == {"score", *reward.components}
    assert all(math.isfinite(v) for k, v in first.items() if k != "reason")
    assert score(name, text, gt, extra_info, **PARAMS.get(name, {})) == first


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(text=TEXTS, gt=GROUND_TRUTHS, extra_info=st.sampled_from(EXTRA_INFOS))
def test_reward_is_total_finite_in_range_and_deterministic(name, text, gt, extra_info):
    check(name, text, gt, extra_info)


def fuzz_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(40)):
        if rng.random() < 0.7:
            parts.append(rng.choice(FRAGMENTS))
        else:
            parts.append("".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12))))
    return "".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_reward_on_5000_fuzzed_outputs(name):
    rng = random.Random(name)
    for _ in range(FUZZ):
        check(name, fuzz_text(rng), rng.choice(GT_VALUES), rng.choice(EXTRA_INFOS))


EXTREMES = [
    "<answer>" + " ".join(["[0.1, 0.2, 0.5, 0.6]"] * 10_000) + "</answer>",
    "<think>" + "pleural effusion in the left lung. " * 30_000 + "</think><answer>B</answer>",
    "<answer>" * 5_000 + "B" + "</answer>" * 5_000,
    "<think>" * 3_000 + "[" * 3_000 + "(" * 3_000,
    "A " * 200_000,
    "\\boxed{" * 10_000,
    "9" * 100_000,
]


@pytest.mark.parametrize("name", NAMES)
def test_reward_survives_extreme_outputs(name):
    for text in EXTREMES:
        for gt in (encode_ground_truth("grounding", boxes=[[0.1, 0.2, 0.5, 0.6]] * 50), encode_ground_truth("report", report="x " * 5000)):
            check(name, text, gt)
