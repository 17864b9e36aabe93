"""What the logger option asks of verl's tracking: environment for wandb, set in every Ray process.

verl's wandb backend calls `wandb.init(project, name, config)` and nothing more; wandb reads the rest
from the environment. radgrpo sets:
- `WANDB_MODE` (online / offline / disabled) and `WANDB_DIR` (the run folder, so offline runs sit
  beside the run's other files and can be synced later with `wandb sync <run_dir>/wandb/offline-run-*`);
- `WANDB_RUN_ID` derived from the run folder and `WANDB_RESUME=allow`: a SLURM job requeued after
  preemption logs into the SAME wandb run (verl issue #2783);
- `WANDB_RUN_GROUP` (default: the sweep folder for `-m` runs, so a sweep is one group) and `WANDB_TAGS`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig

WANDB_MODES = ("online", "offline", "disabled")


def wandb_run_id(run_dir: Path) -> str:
    """Stable per run folder: the same folder (a requeued job) resumes the same wandb run."""
    return hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]


def tracking_env(logger: DictConfig, run_dir: Path, sweep_dir: str | None = None) -> dict[str, str]:
    """wandb's environment for the logger option; `sweep_dir` is the `-m` sweep folder, if any."""
    if "wandb" not in list(logger.get("backends", [])):
        return {}
    mode = str(logger.get("mode", "online"))
    if mode not in WANDB_MODES:
        raise ValueError(f"logger.mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    env = {
        "WANDB_MODE": mode,
        "WANDB_DIR": str(run_dir),
        "WANDB_RUN_ID": wandb_run_id(run_dir),
        "WANDB_RESUME": "allow",
    }
    if logger.get("entity"):
        env["WANDB_ENTITY"] = str(logger.entity)
    group = logger.get("group") or (Path(sweep_dir).name if sweep_dir else None)
    if group:
        env["WANDB_RUN_GROUP"] = str(group)
    if logger.get("tags"):
        env["WANDB_TAGS"] = ",".join(str(t) for t in logger.tags)
    return env
