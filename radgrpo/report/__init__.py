"""radgrpo-report: a sweep's run folders turned into the study's answer.

    build_report([multirun_folder], out_dir) writes
      runs.csv            one row per run: run, status, error, strategy, size, seed, the swept keys,
                          steps, wall time, final/<metric> and best/<metric> columns
      summary_table.csv   per (size, strategy): n seeds, mean, sd, 95% bootstrap CI (radgrpo.report.stats)
      summary_table.md    the same as Markdown
      metric_vs_size.png  headline metric vs data size, one line per strategy with its seed band
      reward_curves.png   training reward per step, one line per run
      eval.csv            radgrpo-eval's tidy rows of every run's evaluated checkpoints (run, model, step,
                          suite, dataset, metric, value, ci_low, ci_high, n), when there are any; runs.csv
                          has their latest and best values as final/eval/<suite>/<dataset>/<metric> columns
      report.json         the above's paths, the status of every run and the plotted series

Failed, unfinished and never-started runs are rows of runs.csv (and counted as `not_counted` in the
table), never dropped, and so are the jobs of a multirun that have no folder yet (expanded from its
multirun.yaml): a report of a sweep still running is a partial report, not a wrong one.
When the runs logged to wandb, the figures and tables are logged to the same project, in a `report`
run of the sweep's group.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from radgrpo.report.collect import eval_summaries, find_runs, load_run, pending_records, swept_keys
from radgrpo.report.plots import metric_vs_size, reward_curves
from radgrpo.report.stats import markdown_table, summary_table

FIXED_COLUMNS = ("run", "status", "error", "strategy", "sampling", "size", "seed", "train_rows", "steps_completed",
                 "wall_time_s")
DEFAULT_METRIC = "critic/score/mean"


def runs_csv_rows(records: list[dict]) -> tuple[list[str], list[dict]]:
    """The CSV's header and rows: fixed columns, swept keys, then metric columns in name order."""
    keys = swept_keys(records)
    metrics = sorted({k for r in records for k in r if k.startswith(("final/", "best/"))})
    header = [*FIXED_COLUMNS, *keys, *metrics, "run_dir"]
    rows = []
    for r in records:
        row = {c: r.get(c) for c in FIXED_COLUMNS}
        row.update({k: r["overrides"].get(k) for k in keys})
        row.update({m: r.get(m) for m in metrics})
        row["run_dir"] = r["run_dir"]
        rows.append(row)
    return header, rows


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                             for k, v in row.items()})


def build_report(paths: list[Path], out_dir: Path, *, metric: str = DEFAULT_METRIC, wandb: bool | None = None,
                 resamples: int = 2000, seed: int = 0) -> dict:
    """Write the report of the runs under `paths` into `out_dir`; returns report.json's content.

    `wandb`: None logs to wandb when some run used it, False never, True always (project from the runs).
    """
    run_dirs = find_runs(paths)
    records = [load_run(d) for d in run_dirs]
    for path in paths:
        if (Path(path) / "multirun.yaml").exists():
            records += pending_records(Path(path), records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header, rows = runs_csv_rows(records)
    _write_csv(out_dir / "runs.csv", header, rows)
    table = summary_table(records, metric, resamples=resamples, seed=seed)
    _write_csv(out_dir / "summary_table.csv", list(table[0]) if table else ["size", "strategy"], table)
    markdown = markdown_table(table, metric)
    (out_dir / "summary_table.md").write_text(markdown + "\n")
    plotted = {
        "metric_vs_size": metric_vs_size(table, records, metric, out_dir / "metric_vs_size.png"),
        "reward_curves": reward_curves(records, out_dir / "reward_curves.png"),
    }
    files = ["runs.csv", "summary_table.csv", "summary_table.md", "metric_vs_size.png", "reward_curves.png"]
    if write_eval_csv(run_dirs, out_dir / "eval.csv"):
        files.append("eval.csv")
    report = {
        "metric": metric,
        "runs": len(records),
        "status": {r["run"]: r["status"] for r in records},
        "not_completed": [{"run": r["run"], "status": r["status"], "error": r["error"], "run_dir": r["run_dir"]}
                          for r in records if r["status"] != "completed"],
        "files": {name: str(out_dir / name) for name in files},
        "table": table,
        "plotted": plotted,
        "markdown": markdown,
    }
    used_wandb = [r for r in records if "wandb" in (r["logger"].get("backends") or [])]
    if wandb or (wandb is None and used_wandb):
        report["wandb"] = log_to_wandb(report, used_wandb[0]["logger"] if used_wandb else {}, run_dirs, out_dir)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def write_eval_csv(run_dirs: list[Path], path: Path) -> int:
    """eval.csv: every run's radgrpo-eval rows with the run's name first; the number of rows written."""
    from radgrpo.eval.evaluate import SUMMARY_COLUMNS

    rows = [{"run": Path(d).name, **row} for d in run_dirs for s in eval_summaries(d) for row in s.get("metrics") or []]
    if rows:
        _write_csv(path, ["run", *SUMMARY_COLUMNS], [{k: r.get(k) for k in ("run", *SUMMARY_COLUMNS)} for r in rows])
    return len(rows)


def log_to_wandb(report: dict, logger: dict, run_dirs: list[Path], out_dir: Path) -> dict:
    """Log the figures and tables to the runs' wandb project, as a `report` run in the sweep's group
    (the group radgrpo.tracking gave the runs; a folder without Hydra's record: its parent's name)."""
    import wandb

    from radgrpo.tracking.labels import run_folder_group

    group = (run_folder_group(run_dirs[0], logger) if run_dirs else logger.get("group")) or (
        run_dirs[0].parent.name if run_dirs else None)
    run = wandb.init(project=logger.get("project", "radgrpo"), entity=logger.get("entity"), group=group,
                     job_type="report", name=f"report_{group}", mode=logger.get("mode", "online"), dir=str(out_dir),
                     reinit="finish_previous")
    with open(report["files"]["runs.csv"]) as fh:
        runs = list(csv.reader(fh))
    with open(report["files"]["summary_table.csv"]) as fh:
        summary = list(csv.reader(fh))
    run.log({
        "report/metric_vs_size": wandb.Image(report["files"]["metric_vs_size.png"]),
        "report/reward_curves": wandb.Image(report["files"]["reward_curves.png"]),
        "report/runs": wandb.Table(columns=runs[0], data=runs[1:]),
        "report/summary_table": wandb.Table(columns=summary[0], data=summary[1:]),
    })
    info = {"project": run.project, "group": group, "id": run.id, "mode": logger.get("mode", "online"),
            "dir": str(Path(run.dir).parent)}
    run.finish()
    return info
