"""Each non-Qwen model family trains with GRPO through verl on CPU (one tiny verl run per family).

One run per family carries every assertion, to keep the suite's budget: 2 GRPO steps on synthetic
grounding data with two image aspect ratios, finite loss, a real update, varying rewards, rollout and
actor agreeing on log-probs, image tokens observed in the rollout prompt and in the actor's forward,
both aspect ratios in one actor micro-batch, and a checkpoint whose processor reloads.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from radgrpo.engine.vision_trace import read_trace
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO

# Small and ordered: 4 prompts x 2 samples a step, rows in file order (square, wide, square, wide),
# one actor micro-batch = 2 prompts, so every micro-batch holds both aspect ratios.
TINY_RUN = [
    "data.mixed_aspect_ratios=true", "algorithm.rollout_n=2", "algorithm.train_batch_size=4",
    "data.verl.data.max_response_length=48", "verl.data.shuffle=false", "verl.trainer.balance_batch=false",
    "algorithm.ppo_mini_batch_size=4", "verl.trainer.val_before_train=false",
    "verl.trainer.test_freq=-1", "verl.trainer.save_freq=2",
]


def run_family(model: str, tmp_path, extra: list[str]):
    trace = tmp_path / "trace"
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs"), "RADGRPO_TRACE_VISION": str(trace)}
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", f"model={model}", *TINY_RUN, *extra],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-6000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    return summary_path.parent, json.loads(summary_path.read_text()), trace


def check_training(run_dir, summary):
    assert summary["status"] == "completed" and summary["steps_completed"] >= 2
    steps = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    assert len(steps) >= 2
    for step in steps:
        assert math.isfinite(step["actor/pg_loss"])
        assert step["training/rollout_probs_diff_mean"] < 1e-3, step["training/rollout_probs_diff_mean"]
    assert any(step["actor/grad_norm"] > 1e-4 for step in steps)
    assert any(step["critic/score/max"] > step["critic/score/min"] for step in steps)
    return steps


def check_images(trace, tokens_by_ratio: set[int], varying_key: str | None):
    """Image tokens counted in the rollout prompts and in the actor's forwards; both aspect ratios in
    one actor micro-batch (seen as two per-row token counts, and as two tensor shapes under
    `varying_key` in the merged inputs, where the family's token count / shapes depend on the ratio)."""
    rollouts = read_trace(trace, "rollout")
    assert {tuple(r["image_sizes"][0]) for r in rollouts} == {(112, 112), (112, 56)}, rollouts[:4]
    assert {r["image_tokens"] for r in rollouts} == tokens_by_ratio
    actor = [f for f in read_trace(trace, "forward") if "WorkerDict" in f["process"]]
    assert actor and all(min(f["rows"]) in tokens_by_ratio for f in actor), actor[:4]
    assert any("WorkerDict" in v["process"] and v["patches"] > 0 for v in read_trace(trace, "vision"))
    if len(tokens_by_ratio) > 1:
        assert any(set(f["rows"]) == tokens_by_ratio for f in actor), actor[:4]
    merges = [m for m in read_trace(trace, "merge") if len(m["samples"]) > 1]
    assert merges
    if varying_key:
        assert any(len({json.dumps(s[varying_key]) for s in m["samples"]}) > 1 for m in merges), merges[:2]
    return rollouts, actor


def check_checkpoint_processor(run_dir, processor_class: str):
    from transformers import AutoProcessor

    from radgrpo.models.processors import register_torchvision_free_processors

    register_torchvision_free_processors()
    (hf_dir,) = run_dir.rglob("global_step_2/actor/huggingface")
    processor = AutoProcessor.from_pretrained(hf_dir)
    assert type(processor).__name__ == processor_class
    assert hasattr(processor, "image_processor")


@pytest.mark.integration
@pytest.mark.parametrize("model, processor_class, image_tokens, varying_key, extra", [
    # Gemma3 resizes every image to one square: 4 tokens and equal shapes whatever the aspect ratio
    # the tiny Gemma3 sees a 56 px square (4 image tokens) and guesses: more samples and more no-finding
    # rows make a group with differing rewards (a real GRPO gradient) all but certain in 2 steps
    ("tiny_medgemma", "Gemma3Processor", {4}, None, ["algorithm.rollout_n=4", "data.no_finding_fraction=0.5"]),
    # anyres: 5 patches / 88 tokens (square) vs 3 patches / 52 tokens (2:1), padded to merge
    ("tiny_llava_onevision", "LlavaOnevisionProcessor", {88, 52}, "pixel_values", ["data.verl.data.max_prompt_length=384"]),
    # one global view + one 448 px crop each; padding rows of the wide image are masked: 545 vs 409 tokens
    # (a prompt longer than max_prompt_length reached the rollout EMPTY at 640, measured; the prompt
    # template grew on main since, and a too-long multimodal prompt now stops the run)
    ("tiny_phi4_multimodal", "Phi4MultimodalProcessor", {545, 409}, None, ["data.verl.data.max_prompt_length=896"]),
])
def test_family_trains_through_verl(model, processor_class, image_tokens, varying_key, extra, tmp_path):
    run_dir, summary, trace = run_family(model, tmp_path, extra)
    check_training(run_dir, summary)
    check_images(trace, image_tokens, varying_key)
    check_checkpoint_processor(run_dir, processor_class)
