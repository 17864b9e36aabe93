"""Parameter-efficient GRPO through verl on CPU, and `radgrpo-export` round trips (three verl runs).

Each run trains the tiny Qwen2.5-VL for 2 steps with a checkpoint at step 2, with a learning rate large
enough that the policy visibly moves (so a rollout that missed a weight update, or an export that
dropped the adapter, would show), then exports the checkpoint and loads it with plain transformers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from radgrpo.export.checkpoint import find_actor_dir, load_full_state_dict, lora_alpha
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO

LR = "algorithm.lr=5e-3"


def _train(tmp_path: Path, *args: str) -> Path:
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", LR, "algorithm.save_freq=2", *args],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    (summary,) = (tmp_path / "outputs").rglob("summary.json")
    return summary.parent


def _step_metrics(run_dir: Path) -> list[dict]:
    steps = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    assert len(steps) == 2
    for step in steps:  # the hf rollout served the same policy the actor trains
        assert step["training/rollout_probs_diff_mean"] < 1e-3, step["training/rollout_probs_diff_mean"]
    return steps


def _base_state() -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    from radgrpo.models.tiny import cache_root, ensure_tiny_model

    path = ensure_tiny_model("tiny_qwen2_5_vl", cache_root() / "tiny_models")
    return AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).state_dict()


def _plain(key: str) -> str:
    return key.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _export(run_dir: Path, *args: str) -> Path:
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.export", f"run={run_dir}", *args], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    assert "check passed" in result.stdout
    out = next(line for line in result.stdout.splitlines() if line.startswith("radgrpo-export: done: "))
    return Path(out.removeprefix("radgrpo-export: done: ").split(" (")[0])


def _round_trip(run_dir: Path, folder: Path, adapter: bool = False) -> float:
    """Load the export as a user would, generate from an image, and return the largest logit gap to
    the trained actor rebuilt from the checkpoint."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from radgrpo.export.assemble import build_actor
    from radgrpo.export.verify import probe_image
    from radgrpo.models.processors import register_torchvision_free_processors

    register_torchvision_free_processors()  # no torchvision here; the saved processor is the stock class
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder / "adapter").eval()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the nodule?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|>" in text  # the chat template travelled with the export
    inputs = processor(text=[text], images=[probe_image()], return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        exported = model(**inputs).logits
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    actor_dir = find_actor_dir(run_dir)
    from transformers import AutoConfig

    actor = build_actor(AutoConfig.from_pretrained(actor_dir / "huggingface"), load_full_state_dict(actor_dir),
                        lora_alpha(actor_dir))
    with torch.no_grad():
        trained = actor(**inputs).logits
    return float((trained - exported).abs().max())


@pytest.mark.integration
def test_lora_run_serves_the_adapter_and_exports_merged_and_as_adapter(tmp_path):
    check_lora_run(_train(tmp_path, "peft=lora"), tmp_path)


@pytest.mark.integration
def test_vision_lora_with_lm_head_trains_only_those(tmp_path):
    check_vision_lora_run(_train(tmp_path, "peft=lora_vision_lm_head",
                                 "verl.actor_rollout_ref.model.enable_gradient_checkpointing=true"))


@pytest.mark.integration
def test_frozen_vision_tower_full_run_exports(tmp_path):
    check_frozen_vision_run(_train(tmp_path, "peft=freeze_vision"))


def check_lora_run(run_dir: Path, tmp_path: Path) -> None:
    steps = _step_metrics(run_dir)
    # the policy moved away from the reference (the base model) - yet rollout and actor agreed
    assert steps[1]["actor/kl_loss"] > 10 * steps[1]["training/rollout_probs_diff_mean"]

    state = load_full_state_dict(find_actor_dir(run_dir))
    lora_b = {k: v for k, v in state.items() if ".lora_B." in k}
    assert lora_b and all(".language_model." in k for k in lora_b) and all(v.abs().max() > 0 for v in lora_b.values())

    merged = _export(run_dir)
    gap = _round_trip(run_dir, merged)
    assert gap < 1e-4
    from transformers import AutoModelForImageTextToText

    base = _base_state()
    exported = AutoModelForImageTextToText.from_pretrained(merged, dtype=torch.float32).state_dict()
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(exported[q], base[q])  # the adapter is in the merged weights

    as_adapter = _export(run_dir, "merge=false", f"output={tmp_path / 'adapter_export'}")
    assert (as_adapter / "adapter" / "adapter_config.json").exists()
    assert _round_trip(run_dir, as_adapter, adapter=True) < 1e-4


def check_vision_lora_run(run_dir: Path) -> None:
    _step_metrics(run_dir)
    state = load_full_state_dict(find_actor_dir(run_dir))
    base = _base_state()
    lora = {k: v for k, v in state.items() if "lora_" in k}
    assert lora and all(".visual." in k for k in lora)
    assert all(v.abs().max() > 0 for k, v in lora.items() if ".lora_B." in k)  # B starts at zero
    frozen = {k: v for k, v in state.items() if "lora_" not in k and _plain(k) != "lm_head.weight"}
    assert len(frozen) == len(base) - 1
    changed = [k for k, v in frozen.items() if not torch.equal(v, base[_plain(k)])]
    assert changed == [], changed[:5]  # bit-identical
    assert not torch.equal(state["base_model.model.lm_head.weight"], base["lm_head.weight"])

    assert _round_trip(run_dir, _export(run_dir)) < 1e-4


def check_frozen_vision_run(run_dir: Path) -> None:
    _step_metrics(run_dir)
    state = load_full_state_dict(find_actor_dir(run_dir))
    base = _base_state()
    assert set(state) == set(base)
    vision = [k for k in state if k.startswith("model.visual.")]
    assert vision and all(torch.equal(state[k], base[k]) for k in vision)
    language = [k for k in state if k.startswith("model.language_model.layers.") and k.endswith("proj.weight")]
    assert language and all(not torch.equal(state[k], base[k]) for k in language)

    assert _round_trip(run_dir, _export(run_dir)) < 1e-4
    check_checkpoint_evaluation(run_dir)


def check_checkpoint_evaluation(run_dir: Path) -> None:
    """radgrpo-eval on the run folder: its saved step, through the export above, on the synthetic val set
    and a prepared MCQA and report set (test_eval_app's, where the base model is evaluated), logged to wandb offline as an `eval` run in the training run's group and read back; radgrpo-report
    then shows the evaluation beside the run's training metrics."""
    import csv
    import json

    from radgrpo.report import build_report
    from radgrpo.tracking import wandb_run_id
    from radgrpo.tracking.offline import read_offline_run

    from .test_eval_app import EXPECTED, prepared_sets

    root = run_dir.parent
    (root / "eval_sets").mkdir()
    mcqa, report_set = prepared_sets(root / "eval_sets")
    sets = (f"suite.sets=[{{name:synthetic_grounding,task:grounding,files:null}},{{name:mcqa,task:mcqa,files:'{mcqa}'}},"
            f"{{name:report,task:report,files:'{report_set}'}}]")
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.eval", f"checkpoint={run_dir}", "step=all", sets,
                             "bootstrap.resamples=50", "logger=wandb", "logger.mode=offline"], cwd=REPO,
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "RADGRPO_OUTPUTS": str(root), "WANDB_CACHE_DIR": str(root / "wandb_cache"),
                                 "WANDB_CONFIG_DIR": str(root / "wandb_config")})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "could not log to wandb" not in result.stderr
    out = run_dir / "eval" / "synthetic_grounding" / "global_step_2"
    summary = json.loads((out / "eval_summary.json").read_text())
    assert summary["step"] == "global_step_2" and summary["model_path"] == str(run_dir / "export" / "global_step_2")
    for dataset, task in (("synthetic_grounding", "grounding"), ("mcqa", "mcqa"), ("report", "report")):
        got = {r["metric"]: r for r in summary["metrics"] if r["dataset"] == dataset}
        # no reward server here: the report set has its rule-based metrics only
        assert set(got) == (EXPECTED[task] if task != "report" else {"bleu4", "rouge_l"}), (dataset, sorted(got))
        assert all(r["ci_low"] <= r["value"] <= r["ci_high"] or r["value"] == -1.0 for r in got.values()), got

    logged = read_offline_run(out, wandb_run_id(out))
    # the training run had no sweep or experiment: its evaluations are grouped under its folder name
    assert logged.job_type == "eval" and logged.group == run_dir.name
    assert {"suite:synthetic_grounding", "step:global_step_2"} <= set(logged.tags)
    for row in summary["metrics"]:
        key = f"eval/{row['dataset']}/{row['metric']}"
        assert logged.summary[key] == row["value"] and logged.summary[f"{key}/ci_low"] == row["ci_low"], key
    assert "eval/summary.table.json" in logged.artifact_files, logged.artifact_files
    (table,) = [row["eval/summary"] for row in logged.history if "eval/summary" in row]
    assert table["_type"] == "table-file" and table["nrows"] == len(summary["metrics"])

    report = build_report([run_dir], root / "report", wandb=False)
    with open(report["files"]["runs.csv"]) as fh:
        (row,) = list(csv.DictReader(fh))
    map50 = next(r["value"] for r in summary["metrics"] if r["metric"] == "map@0.5")
    assert float(row["final/eval/synthetic_grounding/synthetic_grounding/map@0.5"]) == map50
    assert "eval.csv" in report["files"]
