"""radgrpo.generation: a row's prompt is token for token the one verl's agent loop builds in
training, and its k samples are seeded by the row alone (order and resume do not change them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding
from radgrpo.generation import GenerationSettings, HFGenerator, build_messages, load_rows, reward_scorer
from radgrpo.models.tiny import ensure_tiny_model


@pytest.fixture(scope="module")
def setup():
    cache = Path(os.environ["RADGRPO_CACHE"])
    model = ensure_tiny_model("tiny_qwen2_5_vl", cache / "tiny_models")
    folder = generate_synthetic_grounding(SyntheticGroundingSpec(num_train=6, num_val=1, min_pixels=3136,
                                                                 max_pixels=12544), cache / "data")
    rows = load_rows(sorted(str(p) for p in (folder / "train").glob("*.parquet")))
    return HFGenerator(str(model)), rows


def test_prompt_tokens_and_pixels_are_the_ones_verls_agent_loop_builds(setup):
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    generator, rows = setup
    builder = create_continuous_token_builder(generator.tokenizer, hf_model_type="qwen2_5_vl",
                                              processor=generator.processor)
    for row in rows[:2]:
        messages = build_messages(row, generator.processor)
        assert messages[0]["content"][0]["type"] == "image" and messages[0]["content"][0]["max_pixels"] == 12544
        images, videos, audios = RLHFDataset._process_multi_modal_info(messages, image_patch_size=14, config={})
        verl_inputs = {}
        verl_ids = builder.build_initial_tokens(messages, images=images, videos=videos, audios=audios,
                                                mm_inputs_out=verl_inputs)
        ours = generator.model_inputs(row)
        assert ours["input_ids"][0].tolist() == verl_ids
        assert torch.equal(ours["pixel_values"], verl_inputs["pixel_values"])
        assert torch.equal(ours["image_grid_thw"], verl_inputs["image_grid_thw"])
    assert "images" in rows[0] and "images" in rows[0]  # the caller's rows are not modified


def test_samples_are_seeded_by_the_row_not_by_the_order(setup):
    generator, rows = setup
    settings = GenerationSettings(k=3, temperature=1.0, max_new_tokens=12, seed=0)
    forward = [texts for _, texts in generator.generate(rows[:3], settings, progress=False)]
    backward = [generator.generate_row(row, settings) for row in reversed(rows[:3])][::-1]
    assert forward == backward and all(len(texts) == 3 for texts in forward)
    other_seed = [generator.generate_row(row, GenerationSettings(k=3, max_new_tokens=12, seed=1)) for row in rows[:3]]
    assert other_seed != forward
    greedy = GenerationSettings(k=2, temperature=0.0, max_new_tokens=12)
    first, second = generator.generate_row(rows[0], greedy)
    assert first == second


def test_scores_go_through_the_configured_reward(setup):
    _, rows = setup
    score = reward_scorer({"name": "iou_format", "terms": [{"name": "iou", "weight": 0.8, "params": {}},
                                                           {"name": "format", "weight": 0.2, "params": {}}]})
    no_finding = next(r for r in rows if r["extra_info"]["label"] == "no_finding") if any(
        r["extra_info"]["label"] == "no_finding" for r in rows) else None
    row = no_finding or rows[0]
    result = score(row, "<think>clear lungs</think><answer>no finding</answer>")
    assert set(result) >= {"score", "iou", "format"}
    assert result["score"] == pytest.approx(0.8 * result["iou"] + 0.2 * result["format"])
