"""The study end to end, in miniature: pass rates from radgrpo-difficulty, a real 2-run sweep
(uniform and hard, 1 GRPO step each) whose hard run reads them, and radgrpo-report over the sweep."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from PIL import Image

from ..conftest import REPO

DATA = ["data.num_train=24", "data.num_val=4"]
SIZE = 4
TRAIN = ["algorithm.total_training_steps=1", "verl.trainer.val_before_train=false", "verl.trainer.test_freq=-1",
         f"verl.data.train_batch_size={SIZE}", f"verl.actor_rollout_ref.actor.ppo_mini_batch_size={SIZE}"]


def run(module, *args, env):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)


@pytest.mark.integration
def test_difficulty_then_sweep_then_report(tmp_path):
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path)}
    missing = run("radgrpo.cli.train", "sampling=hard_tiny", f"sampling.size={SIZE}", "data.num_train=23",
                  "data.num_val=4", *TRAIN, env=env)
    errors = [ln for ln in missing.stderr.splitlines() if ln.startswith("radgrpo: error:")]
    assert missing.returncode == 2 and len(errors) == 1, missing.stderr[-3000:]
    assert "produce them with: radgrpo-difficulty sampling=hard_tiny data.num_train=23 data.num_val=4" in errors[0]

    difficulty = run("radgrpo.cli.difficulty", "sampling=hard_tiny", "progress=false", *DATA, env=env)
    assert difficulty.returncode == 0, difficulty.stderr[-3000:]
    table_path = next(ln.split(" ")[-1] for ln in difficulty.stdout.splitlines() if ln.endswith("pass_rates.parquet"))
    table = pq.read_table(table_path).to_pylist()
    eligible = {r["id"] for r in table if 0.25 <= r["pass_rate"] <= 0.75}
    assert len(eligible) >= SIZE, f"the tiny model passes too few rows 1-3 times of 4: {len(eligible)}"

    sweep = run("radgrpo.cli.train", "-m", "sampling=uniform,hard_tiny", f"sampling.size={SIZE}", "seed=1",
                *DATA, *TRAIN, env=env)
    assert sweep.returncode == 0, (sweep.stdout[-3000:], sweep.stderr[-3000:])
    (multirun,) = tmp_path.glob("multirun/*/*")
    runs = sorted(p.parent for p in multirun.glob("*/summary.json"))
    assert len(runs) == 2
    hard_run = next(r for r in runs if r.name.endswith("hard_tiny"))
    hard_ids = json.loads((hard_run / "data" / "train_ids.json").read_text())
    assert len(hard_ids) == SIZE and set(hard_ids) <= eligible  # chosen from the difficulty app's table

    report = run("radgrpo.cli.report", str(multirun), env=env)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "2 of 2 runs completed" in report.stdout
    with open(multirun / "report" / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["strategy"] for r in rows) == ["hard", "uniform"]
    for row in rows:
        summary = json.loads((multirun / row["run"] / "summary.json").read_text())
        assert row["status"] == summary["status"] == "completed"
        assert int(row["steps_completed"]) == summary["steps_completed"] == 1
        assert float(row["final/critic/score/mean"]) == pytest.approx(summary["final_metrics"]["critic/score/mean"])
        assert int(row["train_rows"]) == SIZE and row["sampling"] in ("uniform", "hard_tiny")
    with open(multirun / "report" / "summary_table.csv") as fh:
        assert sorted((r["size"], r["strategy"], r["n"]) for r in csv.DictReader(fh)) == [
            (str(SIZE), "hard", "1"), (str(SIZE), "uniform", "1")]
    for name in ("metric_vs_size.png", "reward_curves.png"):
        with Image.open(multirun / "report" / name) as image:
            assert image.format == "PNG"
    plotted = json.loads((multirun / "report" / "report.json").read_text())["plotted"]
    assert set(plotted["metric_vs_size"]) == {"hard", "uniform"} and len(plotted["reward_curves"]) == 2
