"""What the logger option asks of verl's tracking: environment for wandb, set in every Ray process.

verl's wandb backend calls `wandb.init(project, name, config)` and nothing more; wandb reads the rest
from the environment. radgrpo sets:
- `WANDB_MODE` (online / offline / disabled) and `WANDB_DIR` (the run folder, so offline runs sit
  beside the run's other files and can be synced later with `wandb sync <run_dir>/wandb/offline-run-*`);
  offline, also `WANDB_DATA_DIR` (`<run_dir>/wandb/data`): the staged generations tables live in the
  run folder too, so the folder can be copied to a machine with network and synced from there;
- `WANDB_RUN_ID` derived from the run folder and `WANDB_RESUME=allow`: a SLURM job requeued after
  preemption logs into the SAME wandb run (verl issue #2783), its steps continuing;
- `WANDB_RUN_GROUP`, `WANDB_JOB_TYPE` and `WANDB_TAGS` from `run_labels` (radgrpo.tracking.labels);
- for radgrpo's hooks in verl's trainer process (radgrpo.engine.tracking_hooks): where the composed
  radgrpo config is (it joins verl's config in wandb), whether images may be uploaded, how many
  generations a table holds.
Secrets never travel this way: see radgrpo.tracking.secrets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig

from radgrpo.tracking.labels import RunLabels

WANDB_MODES = ("online", "offline", "disabled")
CONFIG_FILE_ENV = "RADGRPO_WANDB_CONFIG"
UPLOAD_IMAGES_ENV = "RADGRPO_UPLOAD_IMAGES"
GENERATIONS_ROWS_ENV = "RADGRPO_GENERATIONS_ROWS"


def wandb_run_id(run_dir: Path) -> str:
    """Stable per run folder: the same folder (a requeued job) resumes the same wandb run."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def uses_wandb(logger: DictConfig) -> bool:
    return "wandb" in list(logger.get("backends", []))


def tracking_env(logger: DictConfig, run_dir: Path, labels: RunLabels | None = None) -> dict[str, str]:
    """wandb's environment for the logger option; `labels` name, group and tag the run."""
    if not uses_wandb(logger):
        return {}
    mode = str(logger.get("mode", "online"))
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    env = {
        "WANDB_MODE": mode,
        "WANDB_DIR": str(run_dir),
        "WANDB_RUN_ID": wandb_run_id(run_dir),
        "WANDB_RESUME": "allow",
        CONFIG_FILE_ENV: str(Path(run_dir) / "radgrpo_config.yaml"),
        UPLOAD_IMAGES_ENV: "1" if logger.get("upload_images", False) else "0",
        GENERATIONS_ROWS_ENV: str(int(logger.get("generations_rows", 64))),
    }
    if mode == "offline":
        env["WANDB_DATA_DIR"] = str(Path(run_dir) / "wandb" / "data")
    if logger.get("entity"):
        env["WANDB_ENTITY"] = str(logger.entity)
    if labels is not None:
        env["WANDB_JOB_TYPE"] = labels.job_type
        if labels.group:
            env["WANDB_RUN_GROUP"] = labels.group
        if labels.tags:
            env["WANDB_TAGS"] = ",".join(labels.tags)
    return env
