"""Prepared parquet loads in verl's own RLHFDataset for a tiny Qwen2.5-VL: prompts render with one
image per placeholder, images go through verl's image path, and ground truth parses back."""

from __future__ import annotations

import os

import pytest

from radgrpo.prep.errors import PrepError

pytestmark = pytest.mark.integration
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoProcessor, AutoTokenizer

    from radgrpo.models.processors import register_torchvision_free_processors
    from radgrpo.models.tiny import ensure_tiny_model

    path = ensure_tiny_model("tiny_qwen2_5_vl")
    register_torchvision_free_processors()
    return path, AutoTokenizer.from_pretrained(path), AutoProcessor.from_pretrained(path)


def _dataset(files, tiny, tmp_path, **config):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    _, tokenizer, processor = tiny
    cfg = OmegaConf.create({"prompt_key": "prompt", "image_key": "images", "max_prompt_length": 4096,
                            "filter_overlong_prompts": False, "cache_dir": str(tmp_path / "verl_cache"),
                            "filter_overlong_prompts_workers": 1, **config})
    return RLHFDataset([str(f) for f in files], tokenizer, cfg, processor)


def _prepared(kind, tmp_path, extra=()):
    from tests.unit import test_prep_inputs as inputs

    out = tmp_path / f"out_{kind}"
    image = inputs.png(tmp_path / "cxr.png", size=(112, 112))
    if kind == "radvlm_llava":
        src = inputs.write_json(tmp_path / "llava.json", inputs.radvlm_records(image))
        args = [f"input={src}"]
    elif kind == "medvlthinker":
        args = ["source=medvlthinker", f"input={inputs.medvlthinker_parquet(tmp_path / 'mv.parquet')}"]
    elif kind == "chexpo_vqa":
        src = inputs.write_json(tmp_path / "chexpo.json", inputs.chexpo_records("cxr.png"))
        args = ["source=chexpo_vqa", f"input={src}", "prompt=think"]
    else:
        src = inputs.write_json(tmp_path / "mg.json", inputs.medgemma_records(image))
        args = ["source=medgemma_mcqa", f"input={src}"]
    result = inputs.prep([*args, f"output={out}", "val_fraction=0", *extra])
    return sorted((out / "train").glob("*.parquet")), result


@pytest.mark.parametrize("kind", ["radvlm_llava", "medvlthinker", "chexpo_vqa", "medgemma_mcqa"])
@pytest.mark.parametrize("mode", ["path", "bytes"])
def test_rows_load_render_and_round_trip(kind, mode, tiny, tmp_path):
    import pyarrow.parquet as pq

    from radgrpo.data.schema import decode_ground_truth

    files, result = _prepared(kind, tmp_path, [f"images.mode={mode}"])
    written = {r["extra_info"]["id"]: r for f in files for r in pq.read_table(f).to_pylist()}
    # filter_overlong_prompts=True makes verl run every prompt, images included, through the processor
    ds = _dataset(files, tiny, tmp_path, filter_overlong_prompts=True)
    assert len(ds) == len(written) == result.manifest["counts"]["kept_total"] > 0
    _, _, processor = tiny
    for i in range(len(ds)):
        item = ds[i]
        row = written[item["extra_info"]["id"]]
        images = [c for m in item["raw_prompt"] if isinstance(m["content"], list)
                  for c in m["content"] if c.get("type") == "image"]
        assert len(images) == len(row["images"]) == row["extra_info"]["num_images"]
        text = processor.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
        assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == len(images)
        truth = decode_ground_truth(item["reward_model"]["ground_truth"])
        assert truth == decode_ground_truth(row["reward_model"]["ground_truth"])
        assert truth["task"] == item["ability"]


def test_token_filter_matches_verls_own_length_filter(tiny, tmp_path):
    """Rows kept by prep's exact token filter = rows verl's filter_overlong_prompts would keep, at
    limits on both sides of the prompt lengths (so training can run with the filter off)."""
    path = tiny[0]
    files, _ = _prepared("radvlm_llava", tmp_path, ["task=grounding"])
    kept_counts = set()
    for limit in range(40, 200, 24):
        verl_kept = len(_dataset(files, tiny, tmp_path / f"v{limit}", filter_overlong_prompts=True,
                                 max_prompt_length=limit))
        (tmp_path / f"p{limit}").mkdir()
        try:
            _, result = _prepared("radvlm_llava", tmp_path / f"p{limit}",
                                  ["task=grounding", f"token_filter.max_prompt_tokens={limit}",
                                   f"token_filter.processor={path}"])
            ours = result.manifest["counts"]["kept_total"]
            assert result.manifest["counts"]["filtered"].get("prompt_tokens_over_limit", 0) == 4 - ours
        except PrepError:  # no row fits: prep refuses to publish an empty dataset
            ours = 0
        assert ours == verl_kept, limit
        kept_counts.add(ours)
    assert {0, 4} < kept_counts  # some limits keep some rows and drop others
