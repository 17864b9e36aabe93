"""Parameter-efficient GRPO through verl on CPU, and `radgrpo-export` round trips of LoRA checkpoints
(five verl runs: Qwen2.5-VL with `lora` and with `lora_vision_lm_head`, and `lora` on Gemma3, LLaVA-OneVision
and Phi-4-multimodal).

Each run trains a tiny model for 2 steps with a checkpoint at step 2, with a learning rate large enough
that the policy visibly moves (so a rollout that missed a weight update, or an export that dropped the
adapter, would show), then exports the checkpoint and loads it with plain transformers. The full-weight
exports (and Qwen's frozen vision tower) are checked on the runs of test_model_families.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from radgrpo.export.checkpoint import find_actor_dir, load_full_state_dict

from ..conftest import REPO
from .family_runs import FAMILIES, LR, base_state, export, round_trip, step_metrics, train

QWEN = FAMILIES["qwen2_5_vl"]
# module names of the vision (and Phi-4-MM's audio) side, where `peft=lora` puts no adapter
VISION_SIDE = re.compile(r"\.(visual|vision_tower|multi_modal_projector|embed_tokens_extend)\.")


def _train(tmp_path: Path, *args: str) -> Path:
    """Qwen2.5-VL on the smoke-sized defaults (8 prompts x 4 samples a step)."""
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", LR, "algorithm.save_freq=2", *args],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    (summary,) = (tmp_path / "outputs").rglob("summary.json")
    return summary.parent


def _plain(key: str) -> str:
    return key.removeprefix("base_model.model.").replace(".base_layer.", ".")


# the language model's projections `peft=lora` adapts, per family (2 layers each in the tiny models)
LANGUAGE_PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
LORA_TARGETS = {"qwen2_5_vl": LANGUAGE_PROJECTIONS, "gemma3": LANGUAGE_PROJECTIONS,
                "llava_onevision": LANGUAGE_PROJECTIONS,
                "phi4_multimodal": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}}


@pytest.mark.integration
def test_lora_run_serves_the_adapter_and_exports_merged_and_as_adapter(tmp_path):
    check_lora_run("qwen2_5_vl", _train(tmp_path, "peft=lora"), tmp_path, as_adapter=True)


@pytest.mark.integration
@pytest.mark.parametrize("name", ["gemma3", "llava_onevision", "phi4_multimodal"])
def test_lora_on_each_family_serves_the_adapter_and_exports(name, tmp_path):
    # 4 samples per prompt: a group with differing rewards in step 1 (so step 2's policy has moved)
    run_dir, _ = train(FAMILIES[name], tmp_path, "peft=lora", LR, "algorithm.rollout_n=4")
    check_lora_run(name, run_dir, tmp_path, as_adapter=False)


@pytest.mark.integration
def test_vision_lora_with_lm_head_trains_only_those(tmp_path):
    check_vision_lora_run(_train(tmp_path, "peft=lora_vision_lm_head",
                                 "verl.actor_rollout_ref.model.enable_gradient_checkpointing=true"))


def check_lora_run(name: str, run_dir: Path, tmp_path: Path, as_adapter: bool) -> None:
    family = FAMILIES[name]
    steps = step_metrics(run_dir)
    # the policy moved away from the reference (the base model) - yet rollout and actor agreed
    print(f"{family.model} LoRA: rollout_probs_diff_mean {[s['training/rollout_probs_diff_mean'] for s in steps]}, "
          f"kl_loss step 2 {steps[1]['actor/kl_loss']:.3g}")
    assert steps[1]["actor/kl_loss"] > 10 * steps[1]["training/rollout_probs_diff_mean"]

    state = load_full_state_dict(find_actor_dir(run_dir))
    lora_b = {k: v for k, v in state.items() if ".lora_B." in k}
    assert {k.split(".lora_B.")[0].rsplit(".", 1)[-1] for k in lora_b} == LORA_TARGETS[name]
    assert not any(VISION_SIDE.search(k) for k in lora_b), [k for k in lora_b if VISION_SIDE.search(k)][:3]
    assert all(v.abs().max() > 0 for v in lora_b.values())  # B starts at zero: every adapter trained
    base = base_state(family)
    frozen = {_plain(k): v for k, v in state.items() if "lora_" not in k}
    assert set(frozen) == set(base)  # every other tensor (vision side, Phi-4-MM's audio) bit-identical
    changed = [k for k, v in frozen.items() if not torch.equal(v, base[k])]
    assert changed == [], changed[:5]

    merged, own_gap = export(run_dir)
    gap = round_trip(family, run_dir, merged)
    print(f"{family.model} LoRA merged export: logit gap {gap:.3g} (radgrpo-export's check {own_gap:.3g})")
    assert gap < 1e-4
    import transformers

    exported = getattr(transformers, family.auto_class).from_pretrained(merged, dtype=torch.float32).state_dict()
    adapted = _plain(next(iter(lora_b)).split(".lora_B.")[0]) + ".weight"
    assert not torch.equal(exported[adapted], base[adapted])  # the adapter is in the merged weights

    if as_adapter:
        folder, _ = export(run_dir, "merge=false", f"output={tmp_path / 'adapter_export'}")
        assert (folder / "adapter" / "adapter_config.json").exists()
        gap = round_trip(family, run_dir, folder, adapter=True)
        print(f"{family.model} LoRA adapter export: logit gap {gap:.3g}")
        assert gap < 1e-4


def check_vision_lora_run(run_dir: Path) -> None:
    step_metrics(run_dir)
    state = load_full_state_dict(find_actor_dir(run_dir))
    base = base_state(QWEN)
    lora = {k: v for k, v in state.items() if "lora_" in k}
    assert lora and all(".visual." in k for k in lora)
    assert all(v.abs().max() > 0 for k, v in lora.items() if ".lora_B." in k)  # B starts at zero
    frozen = {k: v for k, v in state.items() if "lora_" not in k and _plain(k) != "lm_head.weight"}
    assert len(frozen) == len(base) - 1
    changed = [k for k, v in frozen.items() if not torch.equal(v, base[_plain(k)])]
    assert changed == [], changed[:5]  # bit-identical
    assert not torch.equal(state["base_model.model.lm_head.weight"], base["lm_head.weight"])

    folder, _ = export(run_dir)
    assert round_trip(QWEN, run_dir, folder) < 1e-4
