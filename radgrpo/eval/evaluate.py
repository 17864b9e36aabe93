"""`radgrpo-eval`'s work: generate for every sample of a suite, score with the papers' metrics, summarise.

For each model under test (the base model, a Hugging Face folder, or a training run's checkpoints)
and each set of the suite:
  1. generate `repeats` completions per row with the training prompt and chat template
     (radgrpo.generation), resumable per sample (radgrpo.eval.store);
  2. score the task's metrics (radgrpo.eval.metrics) over the whole set and per data source, with
     seeded bootstrap CIs;
  3. write `eval_summary.json` and a tidy `eval_summary.csv` (model, step, suite, dataset, metric,
     value, ci_low, ci_high) next to the per-sample `generations/*.jsonl`.
Where results go is deterministic (not a timestamp), so rerunning a killed command resumes it:
`<run folder>/eval/<suite>/<step>/` for a training run's checkpoint, else
`<paths.output_root>/eval/<model>/<suite>/`.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from radgrpo.atomic import replace_atomically
from radgrpo.data.schema import decode_ground_truth
from radgrpo.eval.metrics import METRICS_BY_TASK, Record, bootstrap_ci, strip_reasoning
from radgrpo.eval.model_metrics import LOWER_IS_BETTER, ModelMetric, active_metrics, score_samples
from radgrpo.eval.store import GenerationStore
from radgrpo.errors import ConfigError
from radgrpo.rewards.text import answer_section

SUMMARY_COLUMNS = ("model", "step", "suite", "dataset", "metric", "value", "ci_low", "ci_high", "n")


@dataclass(frozen=True)
class EvalSet:
    """One dataset of a suite: its name, task and parquet files."""

    name: str
    task: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ModelUnderTest:
    """What to load (`path`, a Hugging Face folder or hub id), how to label it, where results go."""

    label: str
    step: str
    path: str
    output_dir: Path
    run_dir: Path | None = None  # the training run, for a checkpoint


def suite_sets(cfg: DictConfig) -> list[EvalSet]:
    """The suite's sets with their files checked; a set without files takes the data option's val split."""
    from radgrpo.runs.plan import check_data_files, materialise_data
    from radgrpo.runs.plan import suite_sets as checked_sets

    sets = []
    for entry in checked_sets(cfg.suite):
        if entry.task not in METRICS_BY_TASK:
            raise ConfigError(f"suite {cfg.suite.name}: set {entry.name!r} has task {entry.task!r}; "
                              f"known: {', '.join(METRICS_BY_TASK)}")
        files = entry.files
        if files is None:
            _, val, _ = materialise_data(cfg.data, cfg.model, cfg.paths.cache, check_data_files(cfg.data))
            files = tuple(val)
        sets.append(EvalSet(entry.name, entry.task, tuple(files)))
    return sets


def models_under_test(cfg: DictConfig) -> list[ModelUnderTest]:
    """`checkpoint=null`: the model option's own weights (the base model); a Hugging Face folder; or a
    training run folder / one of its `checkpoints/global_step_N` folders, exported first."""
    from radgrpo.runs.plan import resolve_model_path

    checkpoint = cfg.get("checkpoint")
    suite = str(cfg.suite.name)
    if not checkpoint:
        path = resolve_model_path(cfg.model, cfg.paths.cache)
        out = Path(cfg.paths.output_root) / "eval" / str(cfg.model.name) / suite
        return [ModelUnderTest(str(cfg.model.name), "base", path, out)]
    folder = Path(os.path.expanduser(str(checkpoint)))
    if (folder / "config.json").is_file():
        return [ModelUnderTest(folder.name, "hf", str(folder), Path(cfg.paths.output_root) / "eval" / folder.name / suite)]
    from radgrpo.eval.checkpoints import exported_checkpoints

    from radgrpo.runs.folder import RunFolder

    return [ModelUnderTest(run_dir.name, step, str(hf_dir), RunFolder(run_dir).eval / suite / step, run_dir)
            for run_dir, step, hf_dir in exported_checkpoints(folder, str(cfg.get("step", "latest")))]


def generation_key(cfg: DictConfig) -> str:
    """Short hash of what changes the generations: a new setting never reuses old samples."""
    settings = OmegaConf.to_container(cfg.generation, resolve=True)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def generate_set(generator, eval_set: EvalSet, cfg: DictConfig, store: GenerationStore) -> list[dict]:
    """Rows of the set with their completions, generating only what the store lacks."""
    from radgrpo.generation import GenerationSettings, load_rows

    rows = load_rows(eval_set.files)
    gen = cfg.generation
    repeats = int(gen.repeats)
    settings = GenerationSettings(k=1, temperature=float(gen.temperature), max_new_tokens=int(gen.max_new_tokens),
                                  top_p=float(gen.top_p), seed=int(gen.seed))
    todo = [(i, r) for i in range(len(rows)) for r in range(repeats) if not store.has(i, r)]
    if todo:
        from tqdm import tqdm

        for index, repeat in tqdm(todo, desc=f"eval {eval_set.name}", unit="sample", dynamic_ncols=True):
            per_repeat = GenerationSettings(**{**settings.__dict__, "seed": settings.seed + repeat})
            (completion,) = generator.generate_row(rows[index], per_repeat)
            row = rows[index]
            store.append({
                "index": index, "repeat": repeat, "data_source": row.get("data_source"),
                "completion": completion, "ground_truth": (row.get("reward_model") or {}).get("ground_truth"),
                "extra_info": _plain(row.get("extra_info")),
            })
    return store.records()


def score_set(samples: list[dict], eval_set: EvalSet, cfg: DictConfig, model: ModelUnderTest,
              model_metrics: Sequence[ModelMetric] = ()) -> tuple[list[dict], dict[str, int]]:
    """Summary rows (one per metric) for the whole set and, when it mixes several, each data source;
    and the model-based metrics' fallbacks (calls that timed out or failed) over the set."""
    strip = bool(cfg.strip_reasoning)
    texts = [strip_reasoning(s["completion"]) if strip else s["completion"] for s in samples]
    truths = [decode_ground_truth(s["ground_truth"]) for s in samples]
    extras = [s.get("extra_info") or {} for s in samples]
    per_sample, fallbacks = [{} for _ in samples], {}
    if eval_set.task == "report" and model_metrics:
        per_sample, fallbacks = score_samples([answer_section(t) for t in texts], truths, extras, model_metrics)
    records = [Record(t, g, e, v) for t, g, e, v in zip(texts, truths, extras, per_sample)]
    sources = sorted({str(s.get("data_source")) for s in samples})
    groups = [(eval_set.name, records)]
    if len(sources) > 1:
        groups += [(f"{eval_set.name}/{src}", [r for r, s in zip(records, samples) if str(s.get("data_source")) == src])
                   for src in sources]
    metric_fn = METRICS_BY_TASK[eval_set.task]
    rows = []
    for dataset, group in groups:
        values = metric_fn(group)
        cis = bootstrap_ci(group, metric_fn, int(cfg.bootstrap.resamples), int(cfg.bootstrap.seed))
        for metric, value in values.items():
            low, high = cis.get(metric, (None, None))
            # a model-based metric counts the samples it scored (fallbacks are left out)
            n = sum(r.scores.get(metric) is not None for r in group) if metric in group[0].scores else len(group)
            rows.append({"model": model.label, "step": model.step, "suite": str(cfg.suite.name), "dataset": dataset,
                         "metric": metric, "value": value, "ci_low": low, "ci_high": high, "n": n})
    return rows, {f"{eval_set.name}/{name}": count for name, count in fallbacks.items()}


def write_summary(rows: list[dict], model: ModelUnderTest, cfg: DictConfig, fallbacks: dict[str, int] | None = None,
                  timing: dict[str, dict] | None = None) -> Path:
    """`eval_summary.json` and `eval_summary.csv`, replaced atomically. `fallbacks`: per
    `<dataset>/<model-based metric>`, the samples whose server or judge call fell back; `timing`: per
    set, the samples this invocation generated and its generation seconds (a resumed run counts only
    its own)."""
    model.output_dir.mkdir(parents=True, exist_ok=True)
    summary = {"model": model.label, "step": model.step, "model_path": model.path, "suite": str(cfg.suite.name),
               "strip_reasoning": bool(cfg.strip_reasoning),
               "generation": OmegaConf.to_container(cfg.generation, resolve=True), "metrics": rows,
               "fallbacks": dict(fallbacks or {}), "timing": dict(timing or {})}
    _atomic_write(model.output_dir / "eval_summary.json", json.dumps(summary, indent=2))
    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    replace_atomically(model.output_dir / "eval_summary.csv", write_csv)
    return model.output_dir / "eval_summary.json"


def run_eval(cfg: DictConfig) -> list[dict]:
    """Evaluate every model under test on every set of the suite; returns all summary rows."""
    from radgrpo.generation import HFGenerator
    from radgrpo.runs.plan import missing_keys

    missing = missing_keys(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)}: mandatory, no value given; set it on the command line "
                          f"({missing[0]}=...)")
    sets = suite_sets(cfg)
    model_metrics = active_metrics(cfg) if any(s.task == "report" for s in sets) else []
    all_rows = []
    models = models_under_test(cfg)
    for model in models:
        generator = HFGenerator(model.path, device=_device(cfg),
                                trust_remote_code=bool(cfg.model.get("trust_remote_code", False)))
        rows, fallbacks, timing = [], {}, {}
        for eval_set in sets:
            store = GenerationStore(model.output_dir / "generations" / f"{eval_set.name}.{generation_key(cfg)}.jsonl")
            stored, start = len(store.records()), time.monotonic()
            samples = generate_set(generator, eval_set, cfg, store)
            timing[eval_set.name] = {"generated": len(samples) - stored, "seconds": round(time.monotonic() - start, 3)}
            set_rows, set_fallbacks = score_set(samples, eval_set, cfg, model, model_metrics)
            rows += set_rows
            fallbacks.update(set_fallbacks)
        path = write_summary(rows, model, cfg, fallbacks, timing)
        print(summary_lines(rows, path, fallbacks, timing))
        log_to_wandb(rows, fallbacks, model, cfg)
        all_rows += rows
    if len({(r["model"], r["step"]) for r in all_rows}) > 1:
        print(f"radgrpo-eval: best steps {write_best(all_rows, models[0].output_dir.parent)}")
    return all_rows


def evaluate_as_array(cfg: DictConfig, run_dir: Path, steps: list[int], run_local) -> list[dict]:
    """`cluster=slurm`, several checkpoints of `run_dir`: one SLURM array task per checkpoint (`step=<N>`,
    each exporting and evaluating its own), then `eval_best.json` from every task's rows, where
    `step=all` in one process writes it. `run_local(cfg, ray_address)` is what each task runs."""
    from radgrpo.cluster.submit import submit_array_and_wait
    from radgrpo.runs.folder import RunFolder

    tasks = []
    for step in steps:
        task = copy.deepcopy(cfg)
        OmegaConf.update(task, "step", step)
        tasks.append(task)
    results = submit_array_and_wait(tasks, run_local, RunFolder(Path(str(cfg.paths.run_dir))).slurm)
    rows = [row for result in results for row in result["metrics"]]
    print(f"radgrpo-eval: best steps {write_best(rows, RunFolder(run_dir).eval / str(cfg.suite.name))}")
    return rows


def log_to_wandb(rows: list[dict], fallbacks: dict[str, int], model: ModelUnderTest, cfg: DictConfig) -> None:
    """With `logger=wandb`: one wandb run (job type `eval`) per model and suite, in the training run's
    group (radgrpo.tracking.labels.eval_labels), its id derived from the output folder so a rerun
    updates the same run. Summary: `eval/<dataset>/<metric>` with `/ci_low`, `/ci_high`, the
    fallbacks under `eval_fallbacks/`; the tidy rows as the `eval/summary` table. Offline, the run is
    written under the output folder's `wandb/` (sync it later with `wandb sync`)."""
    from radgrpo.tracking import uses_wandb
    from radgrpo.tracking.labels import eval_labels
    from radgrpo.tracking.run import push_summary
    from radgrpo.tracking.secrets import redact_config, secret_values

    if not uses_wandb(cfg.logger) or cfg.logger.get("mode") == "disabled":
        return
    summary: dict[str, Any] = {"model": model.label, "step": model.step, "model_path": model.path,
                               "suite": str(cfg.suite.name)}
    for r in rows:
        key = f"eval/{r['dataset']}/{r['metric']}"
        summary.update({key: r["value"], f"{key}/ci_low": r["ci_low"], f"{key}/ci_high": r["ci_high"]})
    summary.update({f"eval_fallbacks/{k}": v for k, v in fallbacks.items()})
    labels = eval_labels(cfg, model.run_dir, (f"suite:{cfg.suite.name}", f"step:{model.step}"))
    table = (list(SUMMARY_COLUMNS), [[r[c] for c in SUMMARY_COLUMNS] for r in rows])
    try:
        push_summary(cfg, model.output_dir, redact_config(summary, secret_values(cfg)), labels,
                     name=f"eval_{model.label}_{cfg.suite.name}_{model.step}", tables={"eval/summary": table})
    except Exception as exc:  # the summary files are written; say so, do not fail the evaluation
        print(f"radgrpo-eval: warning: could not log to wandb: {type(exc).__name__}: {exc}", file=sys.stderr)


def write_best(rows: list[dict], folder: Path) -> Path:
    """`eval_best.json` beside the per-step folders: for each dataset and metric, the step with the
    best value (the highest; the lowest for RadCliQ) - `step=all`'s answer to "which checkpoint"."""
    best: dict[str, dict[str, dict]] = {}
    for r in rows:
        current = best.setdefault(r["dataset"], {}).get(r["metric"])
        sign = -1.0 if r["metric"] in LOWER_IS_BETTER else 1.0
        if current is None or sign * r["value"] > sign * current["value"]:
            best[r["dataset"]][r["metric"]] = {"step": r["step"], "value": r["value"]}
    path = folder / "eval_best.json"
    _atomic_write(path, json.dumps(best, indent=2))
    return path


def summary_lines(rows: list[dict], path: Path, fallbacks: dict[str, int] | None = None,
                  timing: dict[str, dict] | None = None) -> str:
    """One line per (model, step, dataset): its metrics; the model-based metrics' fallbacks; generation
    time per sample; where the files are."""
    lines: dict[tuple, list[str]] = {}
    for r in rows:
        lines.setdefault((r["model"], r["step"], r["suite"], r["dataset"]), []).append(f"{r['metric']}={r['value']:.4g}")
    out = [f"radgrpo-eval: {m} [{s}] {suite}/{d} (n={next(r['n'] for r in rows if r['dataset'] == d)}): {', '.join(v)}"
           for (m, s, suite, d), v in lines.items()]
    done = {name: t for name, t in (timing or {}).items() if t["generated"]}
    if done:
        out.append("radgrpo-eval: generation: " + ", ".join(
            f"{name} {t['generated']} samples in {t['seconds']:.1f} s ({t['seconds'] / t['generated']:.2f} s/sample)"
            for name, t in done.items()))
    if fallbacks:
        out.append("radgrpo-eval: server/judge fallbacks (samples left out): "
                   + ", ".join(f"{k}={v}" for k, v in fallbacks.items()))
    return "\n".join(out + [f"radgrpo-eval: summary {path}"])


def _device(cfg: DictConfig) -> str:
    from radgrpo.runs.plan import resolve_device

    return resolve_device(str(cfg.cluster.device))


def _atomic_write(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))


def _plain(value: Any) -> Any:
    """numpy values from parquet -> JSON-serialisable Python."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
