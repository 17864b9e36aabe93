"""Run one training job in this process: plan (checks only), materialise, write the run folder, train
with verl, summarise. The folder's layout is radgrpo.runs.folder's; what the console shows (and what goes
to `train.log`) is radgrpo.runs.console's.

This is also what a SLURM job runs on its node (radgrpo.cluster calls `run`).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from radgrpo.runs.console import RunConsole, TrainingFailed, failure_message
from radgrpo.runs.folder import RunFolder
from radgrpo.runs.plan import RunPlan, materialise, plan_run
from radgrpo.runs.summary import write_summary


def write_run_configs(cfg: DictConfig, plan: RunPlan) -> None:
    """Both configs, secrets redacted (radgrpo.tracking.secrets), and the data's manifest."""
    from radgrpo.tracking.secrets import redact_config, secret_values

    values = secret_values(cfg)
    folder = RunFolder(plan.run_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    radgrpo = redact_config(OmegaConf.to_container(cfg, resolve=True), values)
    folder.radgrpo_config.write_text(OmegaConf.to_yaml(OmegaConf.create(radgrpo)))
    folder.verl_config.write_text(OmegaConf.to_yaml(OmegaConf.create(redact_config(plan.verl_config, values))))
    if plan.data_dir is not None and (plan.data_dir / "manifest.json").exists():
        shutil.copy(plan.data_dir / "manifest.json", folder.manifest)


def run(cfg: DictConfig, ray_address: str | None = None) -> dict:
    """Train as configured; returns the summary (also written to `<run_dir>/summary.json`).

    `ray_address`: a running Ray cluster to train on (the SLURM multi-node head); None starts a fresh
    local Ray for this run.
    """
    from radgrpo.engine.runner import process_env, run_verl
    from radgrpo.tracking import run as tracking

    started = time.time()
    run_dir = Path(cfg.paths.run_dir)
    with tracking.scrubbed_logs(cfg, run_dir), RunConsole(run_dir, verbose=bool(cfg.get("verbose", False))) as console:
        plan = plan_run(cfg, ray_address=ray_address)  # every check, before anything is built
        plan = materialise(plan, cfg)
        write_run_configs(cfg, plan)
        folder = RunFolder(plan.run_dir)
        folder.keep_previous_metrics()
        console.start(cfg, plan)
        wandb_env = tracking.start(cfg, folder.root, earlier_lines=folder.earlier_attempt_lines(),
                                   resume_step=folder.latest_checkpointed_step())
        env = {**process_env(plan.device, plan.family, folder.metrics), **wandb_env}
        error = None
        try:
            run_verl(plan.verl_config, env, fork_workers=bool(cfg.cluster.get("fork_workers", True)))
        except BaseException as exc:  # the summary records the failure; the console gets one line
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, Exception):
                raise TrainingFailed(failure_message(exc, console.log_path)) from exc
            raise
        finally:
            summary = write_summary(plan, started=started, error=error)
            tracking.finish(cfg, folder.root, summary)
    return summary

