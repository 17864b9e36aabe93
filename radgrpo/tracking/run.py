"""Tracking around one run, in the process that runs it (locally or in its SLURM job).

`start` runs before verl: it keeps secrets out of this process's console and of the files Hydra
already wrote into the run folder, warns once if images will be uploaded, and returns the wandb
environment for verl's processes. `finish` runs after `summary.json` is written: it opens the same
wandb run again (same id, `resume=allow`) and sets summary.json as its summary, so a dashboard shows
status, steps, wall time and final metrics next to verl's last values. Offline, this appends a second
`offline-run-*-<id>` folder; `wandb sync` replays both into the one run. `scrubbed_logs` wraps the
whole run and rewrites its log files without secrets once nothing writes to them any more.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from radgrpo.tracking import tracking_env, uses_wandb
from radgrpo.tracking.generations import warn_image_upload
from radgrpo.tracking.labels import RunLabels, run_labels
from radgrpo.tracking.sampling_stats import subset_statistics
from radgrpo.tracking.secrets import redact_config, redact_files, scrub_console, secret_values


def start(cfg: DictConfig, run_dir: Path, job_type: str = "train") -> dict[str, str]:
    """Scrub secrets from the console and Hydra's files; the wandb environment for verl."""
    values = secret_values(cfg)
    scrub_console(values)
    redact_files(sorted(Path(run_dir).glob(".hydra/*.yaml")), values)
    if uses_wandb(cfg.logger) and cfg.logger.get("upload_images", False):
        warn_image_upload()
    return tracking_env(cfg.logger, run_dir, run_labels(cfg, job_type))


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

    env = tracking_env(cfg.logger, run_dir, labels)
    run = wandb.init(
        id=env["WANDB_RUN_ID"], resume="allow", project=str(cfg.logger.get("project", "radgrpo")),
        entity=cfg.logger.get("entity"), name=name or str(cfg.run_name), group=labels.group, job_type=labels.job_type,
        tags=list(labels.tags), dir=str(run_dir), mode=env["WANDB_MODE"],
        # no console capture, and no metadata: it would record this process's command line, which
        # may carry a secret override (the training process records the run's environment)
        settings=wandb.Settings(console="off", x_disable_meta=True, x_save_requirements=False),
    )
    if tables:
        run.log({key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])
                 for key, (columns, rows) in tables.items()})
    run.summary.update(summary)
    run.finish()
