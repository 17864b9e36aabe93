"""One prompt mechanism: the synthetic training data, radgrpo-prep and the tiny model's warm start
render the same `conf/prompt/<style>` template, so the warm start sees what training sees."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from radgrpo.data.prompts import chat_content, load_prompt, prompt_styles
from radgrpo.data.synthetic import QUESTION, SyntheticGroundingSpec, generate_synthetic_grounding
from radgrpo.models.tiny import WARM_START_PROMPT
from tests.conftest import CONF_DIR
from tests.unit.test_config_tree import compose_train
from tests.unit.test_prep_inputs import llava, png, prep


def test_style_names_are_the_prompt_group():
    assert prompt_styles() == ["plain", "think"]
    with pytest.raises(ValueError, match="unknown prompt style 'think_answer'; choose one of: plain, think"):
        load_prompt("think_answer")


@pytest.mark.parametrize("style", ["plain", "think"])
def test_training_data_and_prep_render_the_same_prompt(tmp_path, style):
    cfg = compose_train([f"prompt={style}"], tmp_path)
    spec = SyntheticGroundingSpec(num_train=2, num_val=1, prompt=OmegaConf.to_container(cfg.data.prompt, resolve=True))
    synthetic = pq.read_table(generate_synthetic_grounding(spec, tmp_path / "syn") / "train").to_pylist()[0]

    src = tmp_path / "in.json"
    src.write_text(json.dumps([llava("vindr-cxr-train1_0", png(tmp_path / "a.png"), QUESTION,
                                     "The findings include a nodule located at the coordinates [0.1, 0.2, 0.3, 0.4].")]))
    prep([f"input={src}", f"output={tmp_path / 'prep'}", f"prompt={style}", "val_fraction=0"])
    prepared = pq.read_table(tmp_path / "prep" / "train").to_pylist()[0]

    assert synthetic["prompt"] == prepared["prompt"] == load_prompt(style).render(QUESTION, "grounding", 1)
    if style == "think":
        assert "<answer>" in synthetic["prompt"][0]["content"]


def test_warm_start_sees_the_default_training_prompt_as_verl_builds_it(tmp_path):
    """The warm start's messages are the default data's prompt after verl's own placeholder split."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    cfg = compose_train([], tmp_path)
    assert cfg.prompt == OmegaConf.load(CONF_DIR / "prompt" / f"{WARM_START_PROMPT}.yaml")
    spec = SyntheticGroundingSpec(num_train=1, num_val=1, prompt=OmegaConf.to_container(cfg.data.prompt, resolve=True))
    row = pq.read_table(generate_synthetic_grounding(spec, tmp_path) / "train").to_pylist()[0]

    stub = type("Stub", (), {"processor": object(), "image_key": "images", "video_key": "videos",
                             "audio_key": "audios"})()
    verl_messages = RLHFDataset._build_messages(stub, {**row, "images": ["x.png"]}, key="prompt")
    for message in verl_messages:
        for part in message["content"]:
            part.pop("image", None)
    warm_start = chat_content(load_prompt(WARM_START_PROMPT).render(QUESTION, "grounding", 1))
    assert verl_messages == warm_start
