"""Each model family trains with GRPO through verl on CPU and exports (one tiny verl run per family).

One run per family carries every assertion, to keep the suite's budget: 2 GRPO steps on synthetic
grounding data with two image aspect ratios, finite loss, a real update, varying rewards, rollout and
actor agreeing on log-probs, image tokens observed in the rollout prompt and in the actor's forward,
both aspect ratios in one actor micro-batch, a checkpoint whose processor reloads, and the full-weight
export round trip (radgrpo-export, plain transformers, generation, logits within 1e-4 of the actor).

Qwen2.5-VL's and Phi-4-multimodal's runs train with the vision tower frozen (peft=freeze_vision): they
also prove the freezing with each family's tower; the one full-weight Qwen run of the suite also proves
radgrpo-eval on a run folder (LoRA runs: test_peft_runs.py; unfrozen full Qwen training:
test_default_run.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from radgrpo.engine.vision_trace import read_trace
from radgrpo.export.checkpoint import find_actor_dir, load_full_state_dict
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO
from .family_runs import FAMILIES, LR, base_state, export, round_trip, train


def check_training(run_dir, summary):
    assert summary["status"] == "completed" and summary["steps_completed"] >= 2
    steps = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    assert len(steps) >= 2
    print(f"{run_dir.name}: rollout_probs_diff_mean {[s['training/rollout_probs_diff_mean'] for s in steps]}, "
          f"max {[s.get('training/rollout_probs_diff_max') for s in steps]}, grad_norm {[s['actor/grad_norm'] for s in steps]}")
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
    if varying_key == "image_grid_thw":
        return check_qwen_actor_images(trace, tokens_by_ratio)
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


def check_qwen_actor_images(trace, tokens_by_ratio: set[int]):
    """verl replaces Qwen2.5-VL's forward with its own, so the actor's image tokens are read from the
    merged inputs: a sample's grid (t, h, w) in 14 px patches is t*h*w/4 tokens (2x2 merge)."""
    merges = [m for m in read_trace(trace, "merge") if "WorkerDict" in m["process"]]
    tokens = [[math.prod(g) // 4 for s in m["samples"] for g in s["image_grid_thw"]] for m in merges]
    assert tokens and all(set(t) <= tokens_by_ratio for t in tokens), tokens[:4]
    assert any(set(t) == tokens_by_ratio for t in tokens), tokens[:4]  # both ratios in one micro-batch
    assert any("WorkerDict" in v["process"] and v["patches"] > 0 for v in read_trace(trace, "vision"))


def check_checkpoint_processor(run_dir, processor_class: str):
    from transformers import AutoProcessor

    from radgrpo.models.processors import register_torchvision_free_processors

    register_torchvision_free_processors()
    (hf_dir,) = run_dir.rglob("global_step_2/actor/huggingface")
    processor = AutoProcessor.from_pretrained(hf_dir)
    assert type(processor).__name__ == processor_class
    assert hasattr(processor, "image_processor")


def check_full_export(family, run_dir):
    """radgrpo-export (its own check on a square image) and the user's round trip (a 2:1 image)."""
    folder, own_gap = export(run_dir)
    assert own_gap < 1e-4
    gap = round_trip(family, run_dir, folder)
    print(f"{family.model} full export: logit gap {gap:.3g} (radgrpo-export's check {own_gap:.3g})")
    assert gap < 1e-4


# (vision tower, language model layers) in each family's tiny model, for the peft=freeze_vision runs
FROZEN_TOWER = {"qwen2_5_vl": ("model.visual.", "model.language_model.layers."),
                "phi4_multimodal": ("model.embed_tokens_extend.image_embed.img_processor.", "model.layers.")}


def check_frozen_vision(name, family, run_dir):
    state = load_full_state_dict(find_actor_dir(run_dir))
    base = base_state(family)
    assert set(state) == set(base)
    tower, language_model = FROZEN_TOWER[name]
    vision = [k for k in state if k.startswith(tower)]
    assert vision and all(torch.equal(state[k], base[k]) for k in vision)
    language = [k for k in state if k.startswith(language_model) and k.endswith("proj.weight")]
    assert language and all(not torch.equal(state[k], base[k]) for k in language)


def check_checkpoint_evaluation(run_dir) -> None:
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


@pytest.mark.integration
@pytest.mark.parametrize("family, image_tokens, varying_key, extra", [
    # 112x112 -> 8x8 patches -> 16 tokens, 112x56 -> 8x4 -> 8 tokens; flattened patches and
    # image_grid_thw differ per sample, concatenated by verl as they are (the actor's count is read
    # from the merged grids)
    ("qwen2_5_vl", {16, 8}, "image_grid_thw", ["peft=freeze_vision", LR]),
    # Gemma3 resizes every image to one square: 4 tokens and equal shapes whatever the aspect ratio
    ("gemma3", {4}, None, []),
    # anyres: 5 patches / 88 tokens (square) vs 3 patches / 52 tokens (2:1), padded to merge
    ("llava_onevision", {88, 52}, "pixel_values", []),
    # one global view + one 448 px crop each; padding rows of the wide image are masked: 545 vs 409 tokens;
    # its image tower (img_processor) frozen
    ("phi4_multimodal", {545, 409}, None, ["peft=freeze_vision", LR]),
])
def test_family_trains_through_verl_and_exports(family, image_tokens, varying_key, extra, tmp_path):
    name, family = family, FAMILIES[family]
    trace = tmp_path / "trace"
    run_dir, summary = train(family, tmp_path, *extra, trace=trace)
    check_training(run_dir, summary)
    check_images(trace, image_tokens, varying_key)
    check_checkpoint_processor(run_dir, family.processor_class)
    check_full_export(family, run_dir)
    if "peft=freeze_vision" in extra:
        check_frozen_vision(name, family, run_dir)
    if name == "qwen2_5_vl":
        check_checkpoint_evaluation(run_dir)
