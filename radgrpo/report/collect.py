"""Reading run folders into one record per run: what radgrpo-report tabulates.

A run folder (radgrpo.runs.local) holds `radgrpo_config.yaml`, `summary.json` once it ends,
`metrics.jsonl` (one line per step), radgrpo-eval's `eval/<suite>/<step>/eval_summary.json` per
evaluated checkpoint and, inside a Hydra multirun, `.hydra/overrides.yaml` (the
job's own overrides) and possibly `job_status.json` (radgrpo.cluster.sweep_report). Every folder
becomes a record, whatever state it is in: a run still training or killed has no summary and is
reported as `unfinished`, one Hydra created but never started as `not started`, so a report made
while a sweep runs lists every run and computes statistics over the finished ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from radgrpo.runs.folder import RunFolder
from radgrpo.runs.summary import HEADLINE_METRICS

# Metrics where larger is better: the report gives their best value over steps as well as the last.
BEST_IS_MAX_PREFIXES = ("critic/score/", "critic/rewards/", "val-core/", "val-aux/")


def is_run_dir(path: Path) -> bool:
    folder = RunFolder(path)
    return folder.radgrpo_config.exists() or folder.summary.exists() or (path / ".hydra").exists()


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders named by `paths`: a run folder itself, a multirun folder (its run subfolders), or
    a text file listing either, one per line."""
    runs: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            listed = [Path(line.strip()) for line in path.read_text().splitlines() if line.strip()]
            runs.extend(find_runs(listed))
        elif not path.is_dir():
            raise FileNotFoundError(f"no such run or multirun folder: {path}")
        elif is_run_dir(path) and not (path / "multirun.yaml").exists():
            runs.append(path)
        else:
            children = sorted((p for p in path.iterdir() if p.is_dir() and is_run_dir(p)), key=_job_order)
            if not children:
                raise FileNotFoundError(f"{path} holds no run folders (radgrpo_config.yaml, summary.json or .hydra/)")
            runs.extend(children)
    return runs


def _job_order(path: Path) -> tuple:
    """Hydra names multirun jobs `<num>_<run_name>`: numeric order, then name."""
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (1 << 30, path.name)


def _read_yaml(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _steps(run_dir: Path) -> list[dict]:
    from radgrpo.runs.folder import load_metrics

    return [s for s in load_metrics(run_dir) if isinstance(s.get("data"), dict)]


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides or []:
        key, sep, value = item.lstrip("+~").partition("=")
        if sep:
            out[key] = value
    return out


def _status(summary: dict | None, job_status: dict | None, config: dict | None) -> str:
    if summary is not None:
        return str(summary.get("status", "unknown"))
    if job_status is not None and job_status.get("status") == "failed":
        return "failed"
    return "unfinished" if config is not None else "not started"


def load_run(run_dir: Path) -> dict:
    """One run's record: identity, status, sampling strategy/size/seed, overrides, and for every logged
    metric its final value (`final/<name>`) and, for rewards, its best over steps (`best/<name>`), plus
    the per-step reward curve."""
    run_dir = Path(run_dir)
    config = _read_yaml(RunFolder(run_dir).radgrpo_config)
    summary = _read_json(RunFolder(run_dir).summary)
    job_status = _read_json(run_dir / "job_status.json")
    overrides = parse_overrides(_read_yaml(run_dir / ".hydra" / "overrides.yaml") or [])
    sampling = (config or {}).get("sampling") or {}
    ids_file = run_dir / "data" / "train_ids.json"
    train_rows = len(json.loads(ids_file.read_text())) if ids_file.exists() else None
    steps = _steps(run_dir)
    train_steps = [s for s in steps if any(k.startswith("actor/") for k in s["data"])]
    record = {
        "run": run_dir.name,
        "run_dir": str(run_dir),
        "status": _status(summary, job_status, config),
        "error": (summary or {}).get("error") or (job_status or {}).get("error"),
        "strategy": sampling.get("strategy", _strategy_from(overrides)),
        "sampling": sampling.get("name", overrides.get("sampling")),
        "size": _first_set(sampling.get("size"), train_rows, _int_or_none(overrides.get("sampling.size"))),
        "seed": (config or {}).get("seed", _int_or_none(overrides.get("seed"))),
        "train_rows": train_rows,
        "steps_completed": (summary or {}).get("steps_completed",
                                               max((int(s["step"]) for s in train_steps), default=0)),
        "wall_time_s": (summary or {}).get("wall_time_s"),
        "overrides": overrides,
        "logger": (config or {}).get("logger") or {},
        "reward_curve": [(int(s["step"]), s["data"].get("critic/score/mean")) for s in train_steps
                         if _number(s["data"].get("critic/score/mean"))],
    }
    final: dict = {}
    for step in steps:  # the latest value of every metric (the last line may be validation only)
        final.update(step["data"])
    final.update({k: v for k, v in ((summary or {}).get("final_metrics") or {}).items() if v is not None})
    for name in sorted(set(final) | set(HEADLINE_METRICS)):
        if name in final and _number(final[name]):
            record[f"final/{name}"] = float(final[name])
    for name in sorted({k for s in steps for k in s["data"]}):
        if name.startswith(BEST_IS_MAX_PREFIXES):
            values = [float(s["data"][name]) for s in steps if _number(s["data"].get(name))]
            if values:
                record[f"best/{name}"] = max(values)
    record.update(eval_columns(eval_summaries(run_dir)))
    return record


def eval_summaries(run_dir: Path) -> list[dict]:
    """radgrpo-eval's summaries of this run's checkpoints, by suite then step number."""
    found = [_read_json(p) for p in sorted(RunFolder(Path(run_dir)).eval.glob("*/*/eval_summary.json"))]
    return sorted((s for s in found if s), key=lambda s: (str(s.get("suite")), _step_number(s.get("step"))))


def eval_columns(summaries: list[dict]) -> dict[str, float]:
    """`final/eval/<suite>/<dataset>/<metric>`: the latest evaluated step's value; `best/eval/...`:
    the best over the evaluated steps (the lowest for RadCliQ). `--metric eval/<suite>/<dataset>/<metric>`
    then tabulates an evaluation metric over seeds like any training metric."""
    from radgrpo.eval.model_metrics import LOWER_IS_BETTER

    out: dict[str, float] = {}
    for summary in summaries:  # later steps overwrite `final/`
        for row in summary.get("metrics") or []:
            if not _number(row.get("value")):
                continue
            name = f"eval/{summary.get('suite')}/{row['dataset']}/{row['metric']}"
            value = float(row["value"])
            out[f"final/{name}"] = value
            better = min if row["metric"] in LOWER_IS_BETTER else max
            out[f"best/{name}"] = better(out.get(f"best/{name}", value), value)
    return out


def _step_number(step) -> int:
    tail = str(step).rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _first_set(*values):
    return next((v for v in values if v is not None), None)


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _strategy_from(overrides: dict) -> str | None:
    name = overrides.get("sampling")
    return None if name is None else ("hard" if name.startswith("hard") else name)


def swept_keys(records: list[dict]) -> list[str]:
    """Override keys whose values differ across the runs (Hydra's sweep parameters), in first-seen order."""
    keys: list[str] = []
    for record in records:
        keys.extend(k for k in record["overrides"] if k not in keys)
    return [k for k in keys if len({r["overrides"].get(k) for r in records}) > 1]


def expected_jobs(multirun: Path) -> list[dict[str, str]] | None:
    """The override sets Hydra's basic sweeper will run for this multirun folder (from multirun.yaml:
    the preset's `hydra.sweeper.params` and comma lists on the command line; a command-line value of a
    key the preset sweeps wins, a single value too, as in the sweeper), or None when a value uses
    Hydra's functional syntax (range, glob, ...) that this does not expand."""
    config = _read_yaml(Path(multirun) / "multirun.yaml")
    if not config:
        return None
    hydra = config.get("hydra") or {}
    params = {str(k): str(v) for k, v in ((hydra.get("sweeper") or {}).get("params") or {}).items()}
    for item in (hydra.get("overrides") or {}).get("task") or []:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep and ("," in value or key in params):
            params[key] = value
    if any(ch in value for value in params.values() for ch in "()[]{}"):
        return None
    jobs = [{}]
    for key, value in params.items():
        jobs = [{**job, key: option} for job in jobs for option in value.split(",")]
    return jobs


def pending_records(multirun: Path, records: list[dict]) -> list[dict]:
    """A `not started` record for every job of the sweep that has no folder yet (the local launcher
    creates them one by one), so a partial report still shows the whole grid."""
    jobs = expected_jobs(multirun)
    if not jobs:
        return []
    pending = []
    for job in jobs:
        if any(all(r["overrides"].get(k) == v for k, v in job.items()) for r in records):
            continue
        name = " ".join(f"{k}={v}" for k, v in job.items())
        strategy = _strategy_from(job)
        pending.append({"run": f"(pending) {name}", "run_dir": str(multirun), "status": "not started", "error": None,
                        "strategy": strategy, "sampling": job.get("sampling"),
                        "size": _int_or_none(job.get("sampling.size")), "seed": _int_or_none(job.get("seed")),
                        "train_rows": None, "steps_completed": 0, "wall_time_s": None, "overrides": job,
                        "logger": {}, "reward_curve": []})
    return pending
