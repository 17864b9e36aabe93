"""Tracking around one run, in the process that runs it (locally or in its SLURM job).

`start` runs before verl: it keeps secrets out of this process's console and of the files Hydra
already wrote into the run folder, warns once if images will be uploaded, and returns the wandb
environment for verl's processes. `finish` runs after `summary.json` is written: it opens the same
wandb run again (same id, `resume=allow`) and sets summary.json as its summary, so a dashboard shows
status, steps, wall time and final metrics next to verl's last values. Offline, this appends a second
`offline-run-*-<id>` folder; `wandb sync` replays both into the one run. `scrubbed_logs` wraps the
whole run and rewrites its log files without secrets once nothing writes to them any more.

A preempted attempt's own steps (a requeued SLURM job, offline): wandb-core writes an offline run's
records into 32 KiB blocks and puts a partly filled block on disk only when the run finishes; a
process killed before `wandb.finish` (a preempted job's trainer worker, SIGKILL, a lost node) leaves
its last steps - for short runs all of them - out of `run-<id>.wandb`, so `wandb sync` could never
upload them. `start` therefore logs, in an offline folder of their own placed before the resumed
attempt's, the steps an earlier attempt wrote to `metrics.attempt<k>.jsonl` (verl's file logger is
unbuffered and receives the same dict as wandb) that are missing from the run's offline records, up
to the checkpoint the new attempt resumes from (later steps are trained again and logged by it).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from radgrpo.tracking import tracking_env, uses_wandb, wandb_run_id
from radgrpo.tracking.generations import warn_image_upload
from radgrpo.tracking.labels import RunLabels, run_labels
from radgrpo.tracking.sampling_stats import subset_statistics
from radgrpo.tracking.secrets import redact_config, redact_files, scrub_argv, scrub_console, secret_values


def start(cfg: DictConfig, run_dir: Path, job_type: str = "train", earlier_lines: list[dict] = (),
          resume_step: int | None = None) -> dict[str, str]:
    """Scrub secrets from the console, the command line and Hydra's files; complete the offline history with what an
    earlier attempt lost (`earlier_lines`: its metrics lines; `resume_step`: the checkpoint this attempt
    resumes from); the wandb environment for verl."""
    values = secret_values(cfg)
    scrub_console(values)
    scrub_argv(values)
    redact_files(sorted(Path(run_dir).glob(".hydra/*.yaml")), values)
    if uses_wandb(cfg.logger) and cfg.logger.get("upload_images", False):
        warn_image_upload()
    labels = run_labels(cfg, job_type)
    restored = restore_lost_steps(cfg, Path(run_dir), labels, list(earlier_lines), resume_step)
    if restored:
        print(f"radgrpo: wandb: logged steps {restored[0]}-{restored[-1]} of an earlier attempt that was killed "
              f"before wandb wrote them to its offline run", file=sys.stderr)
    return tracking_env(cfg.logger, run_dir, labels)


def lost_steps(recorded: list[dict], earlier_lines: list[dict], resume_step: int | None) -> list[dict]:
    """Metrics lines (`{"step", "data"}`) of earlier attempts missing from the `recorded` history rows,
    up to `resume_step` (one line per step, the latest attempt's when a step was trained twice; steps
    after the checkpoint are trained again). A step is on record only when its recorded rows hold every
    key of its line: a killed attempt can leave a partial row (e.g. a table logged before the step's
    metrics), which must not count as the step."""
    if resume_step is None:
        return []
    keys_on_record: dict[int, set] = {}
    for row in recorded:
        if "_step" in row:
            keys_on_record.setdefault(int(row["_step"]), set()).update(row)
    by_step = {int(line["step"]): line for line in earlier_lines if isinstance(line.get("data"), dict)}
    return [by_step[step] for step in sorted(by_step)
            if step <= resume_step and not set(by_step[step]["data"]) <= keys_on_record.get(step, set())]


def restore_lost_steps(cfg: DictConfig, run_dir: Path, labels: RunLabels, earlier_lines: list[dict],
                       resume_step: int | None) -> list[int]:
    """Offline wandb only: log `lost_steps` into the run (same id, a folder of its own) before this
    attempt starts; returns the steps logged. Online runs stream their records to the server as they
    are logged, and what the server holds is not known here."""
    from radgrpo.tracking.offline import read_offline_run

    if not earlier_lines or not uses_wandb(cfg.logger) or cfg.logger.get("mode") != "offline":
        return []
    try:
        recorded = read_offline_run(run_dir, wandb_run_id(run_dir)).history
    except FileNotFoundError:  # the earlier attempt died before wandb created its folder
        recorded = []
    lines = lost_steps(recorded, earlier_lines, resume_step)
    if not lines:
        return []
    run = _open_run(cfg, run_dir, labels)
    for line in lines:
        run.log(line["data"], step=int(line["step"]))
    _close(run)
    return [int(line["step"]) for line in lines]


@contextmanager
def scrubbed_logs(cfg: DictConfig, run_dir: Path):
    """On exit, rewrite the run folder's log files (train.log, ...) without secret values: what a
    process wrote around the console wrapper (its file descriptors directly) is caught here."""
    try:
        yield
    finally:
        redact_files(sorted(Path(run_dir).glob("*.log")), secret_values(cfg))


def finish(cfg: DictConfig, run_dir: Path, summary: dict, job_type: str = "train") -> None:
    """Scrub summary.json; set `summary` as the wandb run's summary (wandb backends only)."""
    values = secret_values(cfg)
    redact_files([Path(run_dir) / "summary.json"], values)
    if not uses_wandb(cfg.logger) or cfg.logger.get("mode") == "disabled":
        return
    try:
        extra = {"sampling": subset_statistics(summary["train_files"], cfg.sampling)} if summary.get("train_files") else {}
        push_summary(cfg, run_dir, redact_config({**summary, **extra}, values), run_labels(cfg, job_type))
    except Exception as exc:  # training is done and summary.json written; say so, do not fail the run
        print(f"radgrpo: warning: could not set the wandb run summary: {type(exc).__name__}: {exc}", file=sys.stderr)


def push_summary(cfg: DictConfig, run_dir: Path, summary: dict, labels: RunLabels, name: str | None = None,
                 tables: dict[str, tuple[list[str], list[list]]] | None = None) -> None:
    """Open the wandb run of `run_dir` (same id, resume=allow), log `tables` ({key: (columns, rows)})
    and set `summary` as its summary. `name`: the run's display name (default `cfg.run_name`)."""
    import wandb

    run = _open_run(cfg, run_dir, labels, name)
    if tables:
        run.log({key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])
                 for key, (columns, rows) in tables.items()})
    run.summary.update(summary)
    _close(run)


def _open_run(cfg: DictConfig, run_dir: Path, labels: RunLabels, name: str | None = None):
    """The wandb run of `run_dir` (its id, `resume=allow`), opened from radgrpo's own process."""
    import wandb

    env = tracking_env(cfg.logger, run_dir, labels)
    return wandb.init(
        id=env["WANDB_RUN_ID"], resume="allow", project=str(cfg.logger.get("project", "radgrpo")),
        entity=cfg.logger.get("entity"), name=name or str(cfg.run_name), group=labels.group, job_type=labels.job_type,
        tags=list(labels.tags), dir=str(run_dir), mode=env["WANDB_MODE"],
        # no console capture, and no metadata: it would record this process's command line, which
        # may carry a secret override (the training process records the run's environment)
        settings=wandb.Settings(console="off", x_disable_meta=True, x_save_requirements=False),
    )


def _close(run) -> None:
    """Finish the run and stop this process's wandb-core: its files are complete when this returns, and
    the processes this one starts next (verl's Ray workers) do not inherit its service (`WANDB_SERVICE`)
    but start their own, as without radgrpo's wandb calls."""
    import wandb

    run.finish()
    wandb.teardown()
