"""radgrpo-report on hand-made run folders: the CSV matches the folders, failed and unfinished runs
are listed, the seed statistics are right and seeded, and each plot is a PNG with the expected series."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from radgrpo.cli.report import main as report_script, run_report as report_main
from radgrpo.report import build_report
from radgrpo.report.stats import bootstrap_ci

from ..conftest import REPO

METRIC = "critic/score/mean"


def make_run(sweep, num, strategy, size, seed, *, rewards=None, status="completed", logger=None, started=True):
    """A run folder as radgrpo.runs.local leaves it (rewards: critic/score/mean per step)."""
    sampling = "hard_tiny" if strategy == "hard" else strategy
    run = sweep / f"{num}_tiny_{sampling}"
    (run / ".hydra").mkdir(parents=True)
    overrides = [f"sampling={sampling}", f"sampling.size={size}", f"seed={seed}"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if not started:
        return run
    config = {"seed": seed, "sampling": {"name": sampling, "strategy": strategy, "size": size},
              "logger": logger or {"name": "console", "backends": ["console"]}}
    (run / "radgrpo_config.yaml").write_text(yaml.safe_dump(config))
    (run / "data").mkdir()
    (run / "data" / "train_ids.json").write_text(json.dumps([f"r{i}" for i in range(size)]))
    rewards = rewards or []
    lines = [{"step": i + 1, "data": {METRIC: r, "actor/pg_loss": -0.1 * r, "critic/rewards/mean": r}}
             for i, r in enumerate(rewards)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if status in ("completed", "failed"):
        summary = {"status": status, "error": "RuntimeError: boom" if status == "failed" else None,
                   "steps_completed": len(rewards), "wall_time_s": 60.0 + num,
                   "final_metrics": {METRIC: rewards[-1]} if rewards else {}}
        (run / "summary.json").write_text(json.dumps(summary))
    return run


# (strategy, size, seed) -> rewards per step
GRID = {("uniform", 8, 1): [0.1, 0.2], ("uniform", 8, 2): [0.2, 0.3], ("uniform", 16, 1): [0.3, 0.4],
        ("uniform", 16, 2): [0.35, 0.5], ("hard", 8, 1): [0.05, 0.15], ("hard", 8, 2): [0.1, 0.12],
        ("hard", 16, 1): [0.2, 0.25]}


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "multirun" / "2026-12-01" / "04-40-00"
    folder.mkdir(parents=True)
    (folder / "multirun.yaml").write_text("hydra: {}\n")
    for num, ((strategy, size, seed), rewards) in enumerate(GRID.items()):
        make_run(folder, num, strategy, size, seed, rewards=rewards)
    make_run(folder, 7, "hard", 16, 2, rewards=[0.9], status="failed")   # failed after one step
    make_run(folder, 8, "hard", 16, 3, rewards=[0.4], status="running")  # still training: no summary
    make_run(folder, 9, "uniform", 16, 3, started=False)                  # queued, never started
    return folder


def read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_runs_csv_matches_the_run_folders(sweep, tmp_path):
    report = build_report([sweep], tmp_path / "report", wandb=False)
    rows = read_csv(report["files"]["runs.csv"])
    folders = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert sorted(r["run_dir"] for r in rows) == sorted(str(p) for p in folders)  # every run, none dropped
    for row in rows:
        run = next(p for p in folders if str(p) == row["run_dir"])
        overrides = dict(o.split("=") for o in yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()))
        assert row["sampling"] == overrides["sampling"] and row["sampling.size"] == overrides["sampling.size"]
        assert row["seed"] == overrides["seed"] and row["sampling.size"] == row["size"]
        summary_path, config_path = run / "summary.json", run / "radgrpo_config.yaml"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            assert row["status"] == summary["status"]
            assert float(row[f"final/{METRIC}"]) == summary["final_metrics"][METRIC]
            assert int(row["steps_completed"]) == summary["steps_completed"]
            assert float(row["wall_time_s"]) == summary["wall_time_s"]
        else:
            assert row["status"] == ("unfinished" if config_path.exists() else "not started")
        if config_path.exists():
            config = yaml.safe_load(config_path.read_text())
            assert row["strategy"] == config["sampling"]["strategy"]
            steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            assert float(row[f"best/{METRIC}"]) == max(s["data"][METRIC] for s in steps)
            assert float(row["final/actor/pg_loss"]) == steps[-1]["data"]["actor/pg_loss"]
            assert int(row["train_rows"]) == config["sampling"]["size"]
    by_status = {r["run"]: r["status"] for r in rows}
    assert sorted(by_status.values()).count("completed") == 7
    failed = next(r for r in rows if r["status"] == "failed")
    assert failed["error"] == "RuntimeError: boom"
    assert {r["run"] for r in report["not_completed"]} == {"7_tiny_hard_tiny", "8_tiny_hard_tiny", "9_tiny_uniform"}


def test_summary_table_is_mean_sd_and_a_seeded_bootstrap_over_completed_seeds(sweep, tmp_path):
    report = build_report([sweep], tmp_path / "report", wandb=False)
    table = {(int(r["size"]), r["strategy"]): r for r in read_csv(report["files"]["summary_table.csv"])}
    assert set(table) == {(8, "uniform"), (16, "uniform"), (8, "hard"), (16, "hard")}
    for (size, strategy), row in table.items():
        values = [rewards[-1] for (s, n, _), rewards in GRID.items() if s == strategy and n == size]
        assert int(row["n"]) == len(values)
        assert float(row["mean"]) == pytest.approx(np.mean(values))
        if len(values) > 1:
            assert float(row["sd"]) == pytest.approx(np.std(values, ddof=1))
            assert min(values) <= float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"]) <= max(values)
        else:
            assert row["sd"] == "" and float(row["ci_low"]) == float(row["ci_high"]) == values[0]
    assert int(table[(16, "hard")]["not_counted"]) == 2 and int(table[(16, "uniform")]["not_counted"]) == 1
    again = build_report([sweep], tmp_path / "again", wandb=False)
    assert again["table"] == report["table"]  # seeded
    assert "| 16 | hard | 1 | 0.2500 |" in report["markdown"]


def test_bootstrap_interval_narrows_with_more_seeds_and_holds_the_mean():
    rng = np.random.default_rng(3)
    few, many = rng.normal(0.5, 0.1, 3), rng.normal(0.5, 0.1, 30)
    low3, high3 = bootstrap_ci(list(few))
    low30, high30 = bootstrap_ci(list(many))
    assert low3 <= few.mean() <= high3 and low30 <= many.mean() <= high30
    assert high30 - low30 < high3 - low3
    assert bootstrap_ci([]) != bootstrap_ci([]) or math.isnan(bootstrap_ci([])[0])


def test_plots_are_pngs_with_one_series_per_strategy_and_per_run(sweep, tmp_path):
    report = build_report([sweep], tmp_path / "report", wandb=False)
    for name in ("metric_vs_size.png", "reward_curves.png"):
        with Image.open(report["files"][name]) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
            image.verify()
    series = report["plotted"]["metric_vs_size"]
    assert set(series) == {"uniform", "hard"}
    assert series["uniform"]["size"] == [8, 16] and series["hard"]["size"] == [8, 16]
    assert series["uniform"]["mean"] == pytest.approx([0.25, 0.45])
    assert series["hard"]["mean"] == pytest.approx([0.135, 0.25])
    assert sorted(series["hard"]["seed_points"]) == [(8, 0.12), (8, 0.15), (16, 0.25)]  # completed runs only
    curves = report["plotted"]["reward_curves"]
    assert curves["0_tiny_uniform"] == ([1, 2], [0.1, 0.2])
    assert curves["8_tiny_hard_tiny"] == ([1], [0.4])  # an unfinished run's curve so far is drawn too
    assert "9_tiny_uniform" not in curves


def test_a_run_list_file_and_single_run_folders_work(sweep, tmp_path):
    listing = tmp_path / "runs.txt"
    chosen = sorted(p for p in sweep.iterdir() if p.is_dir())[:3]
    listing.write_text("\n".join(str(p) for p in chosen) + "\n")
    report = build_report([listing], tmp_path / "from_list", wandb=False)
    assert report["runs"] == 3
    report = build_report([chosen[0]], tmp_path / "one", wandb=False)
    assert report["runs"] == 1


def test_cli_defaults_to_the_folder_and_fails_in_one_line(sweep, tmp_path, capsys):
    report = report_main([str(sweep), "--no-wandb"])
    assert report_script([str(sweep), "--no-wandb"]) is None  # the console script's sys.exit(main()): status 0
    assert report["files"]["runs.csv"] == str(sweep / "report" / "runs.csv")
    out = capsys.readouterr().out
    assert "7 of 10 runs completed" in out and "FAILED: 7_tiny_hard_tiny (RuntimeError: boom)" in out
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.report", str(tmp_path / "nope")], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"radgrpo-report: error: no such run or multirun folder: {tmp_path / 'nope'}"]


def test_runs_that_used_wandb_get_the_report_logged_to_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = tmp_path / "sweep"
    logger = {"name": "wandb", "backends": ["console", "wandb"], "project": "radgrpo-test", "mode": "offline"}
    for num, seed in enumerate((1, 2)):
        make_run(sweep, num, "uniform", 8, seed, rewards=[0.1 * seed], logger=logger)
    report = build_report([sweep], tmp_path / "report")
    assert report["wandb"]["project"] == "radgrpo-test" and report["wandb"]["group"] == "sweep"
    offline = list((tmp_path / "report" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert "wandb" not in build_report([sweep], tmp_path / "off", wandb=False)


def test_a_sweep_still_running_lists_the_jobs_hydra_has_not_created_yet(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"params": {"sampling": "uniform,hard_tiny", "sampling.size": "8,16"}},
        "overrides": {"task": ["sweep=cpu_size_x_sampling", "seed=1,2"]}}}))
    make_run(sweep, 0, "uniform", 8, 1, rewards=[0.2])
    make_run(sweep, 1, "uniform", 8, 2, rewards=[0.1], status="running")
    report = build_report([sweep], tmp_path / "report", wandb=False)
    assert report["runs"] == 8 and list(report["status"].values()).count("not started") == 6
    pending = [r["run"] for r in report["not_completed"] if r["status"] == "not started"]
    assert "(pending) sampling=hard_tiny sampling.size=16 seed=2" in pending
    rows = read_csv(report["files"]["runs.csv"])
    row = next(r for r in rows if r["run"] == "(pending) sampling=hard_tiny sampling.size=16 seed=2")
    assert (row["strategy"], row["size"], row["seed"]) == ("hard", "16", "2")


def test_a_single_command_line_value_of_a_swept_key_replaces_the_presets_values(tmp_path):
    # radgrpo -m sweep=cpu_size_x_sampling seed=1: Hydra's sweeper runs 2 x 2 x 1 jobs, not 2 x 2 x 2
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"params": {"sampling": "uniform,hard_tiny", "sampling.size": "8,16", "seed": "1,2"}},
        "overrides": {"task": ["sweep=cpu_size_x_sampling", "sampling.size=2,4", "seed=1"]}}}))
    make_run(sweep, 0, "uniform", 2, 1, rewards=[0.2])
    report = build_report([sweep], tmp_path / "report", wandb=False)
    assert report["runs"] == 4 and list(report["status"].values()).count("not started") == 3
    assert "(pending) sampling=hard_tiny sampling.size=4 seed=1" in [r["run"] for r in report["not_completed"]]


def _eval_summary(run, step, rows):
    """radgrpo-eval's summary of one checkpoint of `run` (radgrpo.eval.evaluate.write_summary's layout)."""
    folder = run / "eval" / "radvlm_report" / f"global_step_{step}"
    folder.mkdir(parents=True)
    metrics = [{"model": run.name, "step": f"global_step_{step}", "suite": "radvlm_report", "dataset": "mimic",
                "metric": m, "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "n": 8} for m, v in rows.items()]
    (folder / "eval_summary.json").write_text(json.dumps({"suite": "radvlm_report", "step": f"global_step_{step}",
                                                          "metrics": metrics, "fallbacks": {}}))


def test_eval_summaries_of_the_runs_become_columns_a_table_metric_and_eval_csv(sweep, tmp_path):
    runs = {p.name: p for p in sweep.iterdir() if p.is_dir()}
    # steps written out of order: the latest is step 20 whatever the folder order
    _eval_summary(runs["0_tiny_uniform"], 20, {"bleu4": 0.30, "radcliq": 0.8})
    _eval_summary(runs["0_tiny_uniform"], 5, {"bleu4": 0.35, "radcliq": 0.6})
    _eval_summary(runs["1_tiny_uniform"], 20, {"bleu4": 0.10, "radcliq": 1.2})
    report = build_report([sweep], tmp_path / "report", metric="eval/radvlm_report/mimic/bleu4", wandb=False)
    rows = {r["run"]: r for r in read_csv(report["files"]["runs.csv"])}
    first = rows["0_tiny_uniform"]
    assert float(first["final/eval/radvlm_report/mimic/bleu4"]) == 0.30  # step 20's
    assert float(first["best/eval/radvlm_report/mimic/bleu4"]) == 0.35   # the highest
    assert float(first["best/eval/radvlm_report/mimic/radcliq"]) == 0.6  # the lowest: lower is better
    assert rows["2_tiny_uniform"]["final/eval/radvlm_report/mimic/bleu4"] == ""  # never evaluated
    (uniform_8,) = [r for r in report["table"] if r["size"] == 8 and r["strategy"] == "uniform"]
    assert uniform_8["n"] == 2 and uniform_8["mean"] == pytest.approx(0.2)  # seeds 1 and 2 at step 20
    tidy = read_csv(report["files"]["eval.csv"])
    assert len(tidy) == 6 and tidy[0]["run"] == "0_tiny_uniform" and tidy[0]["step"] == "global_step_5"
    assert list(tidy[0]) == ["run", "model", "step", "suite", "dataset", "metric", "value", "ci_low", "ci_high", "n"]
    assert "eval.csv" not in build_report([runs["3_tiny_uniform"]], tmp_path / "plain", wandb=False)["files"]
