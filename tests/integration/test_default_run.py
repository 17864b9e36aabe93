"""The README's first command: the embedded default, a real GRPO run through verl on CPU, run twice:
from the checkout, and from a wheel installed outside it (same seed: the same rewards and gradients)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radgrpo.engine.vision_trace import read_trace
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO
from ..wheel import install_wheel


def _train(outputs, command=(sys.executable, "-m", "radgrpo.cli.train"), cwd=REPO, **env_extra):
    env = {**os.environ, "RADGRPO_OUTPUTS": str(outputs), **env_extra}
    result = subprocess.run([*command], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    logs = list(Path(outputs).rglob("train.log"))
    assert result.returncode == 0, "\n".join([result.stdout, result.stderr[-3000:], *(p.read_text()[-5000:] for p in logs)])
    return result


@pytest.mark.integration
def test_embedded_default_trains_through_verl_reproducibly(tmp_path):
    trace = tmp_path / "vision_trace"
    result = _train(tmp_path / "a", RADGRPO_TRACE_VISION=str(trace))
    (summary_path,) = (tmp_path / "a").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    run_dir = summary_path.parent
    assert summary["status"] == "completed" and summary["steps_completed"] >= 2

    steps = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    assert len(steps) >= 2
    for step in steps:
        assert math.isfinite(step["actor/pg_loss"]) and math.isfinite(step["critic/score/mean"])
        # rollout (hf, with the image) and actor (FSDP, with pixel_values) agree on the sampled tokens
        assert step["training/rollout_probs_diff_mean"] < 1e-3
        assert "reward/iou/mean" in step  # every reward component reaches the step metrics
    assert any(step["actor/grad_norm"] > 1e-4 for step in steps)  # rewards varied: a real GRPO update
    assert any(step["critic/score/max"] > step["critic/score/min"] for step in steps)

    # images reached both sides: the hf rollout server and the FSDP training workers ran the vision tower
    calls = read_trace(trace, "vision")
    assert any("HFRolloutServer" in c["process"] and c["patches"] > 0 for c in calls), calls[:5]
    assert any("WorkerDict" in c["process"] and c["patches"] > 0 for c in calls), calls[:5]
    # ... on prompts holding the image's placeholder tokens (16 for a 112x112 image)
    assert {r["image_tokens"] for r in read_trace(trace, "rollout")} == {16}
    # ... and the actor's micro-batches carry 16-token images (grid 1x8x8 patches, merged 2x2); verl
    # replaces Qwen2.5-VL's forward with its own, so the count is read from the merged inputs
    merges = [m for m in read_trace(trace, "merge") if "WorkerDict" in m["process"]]
    grids = {tuple(g) for m in merges for s in m["samples"] for g in s["image_grid_thw"]}
    assert grids == {(1, 8, 8)}, grids

    for name in ("radgrpo_config.yaml", "verl_config.yaml", "manifest.json", "metrics.jsonl"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "rollouts").is_dir()

    # the console: a header, one line per step, the summary; verl's and Ray's stream is in train.log
    console = (result.stdout + result.stderr).splitlines()
    assert len(console) <= 40, console
    assert any(line.startswith("radgrpo: run folder") for line in console)
    assert sum(line.startswith("radgrpo: step ") for line in console) == len(steps), console
    train_log = (run_dir / "train.log").read_text()
    assert "(WorkerDict pid=" in train_log  # Ray forwards its workers' output there
    assert "radgrpo: Ray's workers are forked from one process (ready: " in train_log  # cluster.fork_workers

    # a wheel installed outside the checkout (config inside the package) dry-runs, then trains the
    # same with workers that each import verl themselves (no fork server): per-step rewards and
    # gradient norms agree with the checkout's run (same seed)
    wheel = install_wheel(tmp_path / "wheel")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dry = _train(tmp_path / "dry", [wheel.radgrpo, "dry_run=true"], elsewhere, **wheel.env)
    assert "(dry run: nothing started)" in dry.stdout
    assert f"path: {wheel.package / 'rewards' / 'verl_entry.py'}" in dry.stdout  # the reward entry
    _train(tmp_path / "b", [wheel.radgrpo, "cluster.fork_workers=false"], elsewhere, **wheel.env)
    (other_dir,) = [p.parent for p in (tmp_path / "b").rglob("summary.json")]
    assert "are forked from one process" not in (other_dir / "train.log").read_text()
    other = [s["data"] for s in load_metrics(other_dir) if "actor/pg_loss" in s["data"]]
    for key in ("critic/score/mean", "actor/grad_norm", "response_length/mean"):
        assert [s[key] for s in other] == pytest.approx([s[key] for s in steps], abs=1e-6), key
