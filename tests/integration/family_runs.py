"""Tiny verl runs of each model family and the export round trip, shared by test_model_families.py
(full-weight runs) and test_peft_runs.py (LoRA runs).

The round trip is what a user does after training: `radgrpo-export` the step-2 checkpoint, load the
folder with plain transformers (the auto class named here, not the one radgrpo's registry gives, so a
wrong registry entry fails), generate from an image, and compare the logits with the trained actor
rebuilt from the checkpoint's shards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from radgrpo.runs.folder import load_metrics

from ..conftest import REPO

# Small and ordered: 4 prompts x 2 samples a step, rows in file order (square, wide, square, wide),
# one actor micro-batch = 2 prompts, so every micro-batch holds both aspect ratios; a checkpoint at step 2.
TINY_RUN = [
    "data.mixed_aspect_ratios=true", "algorithm.rollout_n=2", "algorithm.train_batch_size=4",
    "data.verl.data.max_response_length=48", "verl.data.shuffle=false", "verl.trainer.balance_batch=false",
    "algorithm.ppo_mini_batch_size=4", "verl.trainer.val_before_train=false",
    "verl.trainer.test_freq=-1", "verl.trainer.save_freq=2",
]
# large enough that the policy visibly moves in 2 steps (a rollout that missed a weight update, or an
# export that dropped an adapter, shows)
LR = "algorithm.lr=5e-3"


@dataclass(frozen=True)
class Family:
    model: str
    auto_class: str          # how a user loads the export
    processor_class: str     # what the checkpoint's / export's processor reloads as
    template_marker: str     # the image placeholder the chat template writes
    extra: tuple[str, ...]   # what the family's tiny run needs beside TINY_RUN


FAMILIES = {
    "qwen2_5_vl": Family("tiny_qwen2_5_vl", "AutoModelForImageTextToText", "Qwen2_5_VLProcessor",
                         "<|vision_start|>", ()),
    # the tiny Gemma3 sees a 56 px square (4 image tokens) and guesses: more samples and more no-finding
    # rows make a group with differing rewards (a real GRPO gradient) all but certain in 2 steps
    "gemma3": Family("tiny_medgemma", "AutoModelForImageTextToText", "Gemma3Processor", "<start_of_image>",
                     ("algorithm.rollout_n=4", "data.no_finding_fraction=0.5")),
    "llava_onevision": Family("tiny_llava_onevision", "AutoModelForImageTextToText", "LlavaOnevisionProcessor",
                              "<image>", ("data.verl.data.max_prompt_length=384",)),
    # (a prompt longer than max_prompt_length reached the rollout EMPTY at 640, measured; the prompt
    # template grew on main since, and a too-long multimodal prompt now stops the run)
    "phi4_multimodal": Family("tiny_phi4_multimodal", "AutoModelForCausalLM", "Phi4MultimodalProcessor",
                              "<|image|>", ("data.verl.data.max_prompt_length=896",)),
}


def train(family: Family, root: Path, *args: str, trace: Path | None = None) -> tuple[Path, dict]:
    """One tiny GRPO run of `family` (TINY_RUN + its extras + `args`); the run folder and summary."""
    env = {**os.environ, "RADGRPO_OUTPUTS": str(root / "outputs")}
    if trace is not None:
        env["RADGRPO_TRACE_VISION"] = str(trace)
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", f"model={family.model}", *TINY_RUN,
                             *family.extra, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-6000:])
    (summary_path,) = (root / "outputs").rglob("summary.json")
    return summary_path.parent, json.loads(summary_path.read_text())


def step_metrics(run_dir: Path) -> list[dict]:
    """The 2 training steps' metrics; the hf rollout served the policy the actor trains (diff < 1e-3)."""
    steps = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    assert len(steps) == 2
    for step in steps:
        assert step["training/rollout_probs_diff_mean"] < 1e-3, step["training/rollout_probs_diff_mean"]
    return steps


def export(run_dir: Path, *args: str) -> tuple[Path, float]:
    """`radgrpo-export` of the newest checkpoint: the folder and the logit gap its own check printed."""
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.export", f"run={run_dir}", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    passed = next(line for line in result.stdout.splitlines() if "check passed" in line)
    out = next(line for line in result.stdout.splitlines() if line.startswith("radgrpo-export: done: "))
    return Path(out.removeprefix("radgrpo-export: done: ").split(" (")[0]), float(passed.split("difference| ")[1].split()[0])


def base_state(family: Family) -> dict[str, torch.Tensor]:
    """The tiny model the run started from, as a plain state dict."""
    import transformers

    from radgrpo.models.tiny import cache_root, ensure_tiny_model

    path = ensure_tiny_model(family.model, cache_root() / "tiny_models")
    return getattr(transformers, family.auto_class).from_pretrained(path, dtype=torch.float32).state_dict()


def round_trip(family: Family, run_dir: Path, folder: Path, adapter: bool = False) -> float:
    """Load the export as a user would, generate from an image, and return the largest logit gap to
    the trained actor rebuilt from the checkpoint."""
    import transformers
    from transformers import AutoConfig, AutoProcessor

    from radgrpo.export.assemble import build_actor
    from radgrpo.export.checkpoint import find_actor_dir, load_full_state_dict, lora_alpha
    from radgrpo.export.verify import probe_image
    from radgrpo.models.processors import register_torchvision_free_processors

    register_torchvision_free_processors()  # no torchvision here; the saved processor names the stock class
    processor = AutoProcessor.from_pretrained(folder)
    assert type(processor).__name__ == family.processor_class
    model = getattr(transformers, family.auto_class).from_pretrained(folder, dtype=torch.float32).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder / "adapter").eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the nodule?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert family.template_marker in text  # the chat template travelled with the export
    # a 2:1 image: not the square probe radgrpo-export's own check uses
    inputs = processor(text=[text], images=[probe_image().resize((112, 56))], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        exported = model(**inputs).logits
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    actor_dir = find_actor_dir(run_dir)
    actor = build_actor(AutoConfig.from_pretrained(actor_dir / "huggingface"), load_full_state_dict(actor_dir),
                        lora_alpha(actor_dir))
    with torch.no_grad():
        trained = actor(**inputs).logits
    return float((trained - exported).abs().max())
