"""Run one training job in this process: plan, write the run folder, train with verl, summarise.

The run folder (Hydra's output dir) ends up holding
  radgrpo_config.yaml  the composed radgrpo config
  verl_config.yaml     the verl config it produced
  manifest.json        the prepared data's manifest (when the data has one)
  metrics.jsonl        one line per step: {"step": n, "data": {metric: value}}
  checkpoints/         verl checkpoints (resume_mode=auto picks them up on a rerun)
  rollouts/            verl's per-step generations with every reward component
  summary.json         steps done, final metrics, wall time, where checkpoints are
  train.log            everything verl and Ray printed (radgrpo.runs.console)
This is also what a SLURM job runs on its node (radgrpo.cluster calls `run`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from radgrpo.runs.console import RunConsole, TrainingFailed, failure_message
from radgrpo.runs.plan import plan_run
from radgrpo.runs.summary import write_summary


def write_run_configs(cfg: DictConfig, verl_cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "radgrpo_config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "verl_config.yaml").write_text(OmegaConf.to_yaml(verl_cfg, resolve=False))


def run(cfg: DictConfig, extra_verl_overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Train as configured; returns the summary (also written to `<run_dir>/summary.json`).

    `extra_verl_overrides` are `key=value` strings applied last (the SLURM launcher uses them to point
    verl at a multi-node Ray cluster and set `trainer.nnodes`).
    """
    from radgrpo.engine.runner import process_env, run_verl
    from radgrpo.engine.verl_config import apply, flatten
    from radgrpo.tracking import tracking_env

    started = time.time()
    with RunConsole(Path(cfg.paths.run_dir), verbose=bool(cfg.get("verbose", False))) as console:
        plan = plan_run(cfg)
        apply(plan.verl_config, flatten(_parse_overrides(extra_verl_overrides)))
        write_run_configs(cfg, plan.verl_config, plan.run_dir)
        if plan.data_dir is not None and (plan.data_dir / "manifest.json").exists():
            shutil.copy(plan.data_dir / "manifest.json", plan.run_dir / "manifest.json")
        metrics_path = plan.run_dir / "metrics.jsonl"
        _keep_previous_metrics(metrics_path)
        console.start(cfg, plan)
        error = None
        try:
            run_verl(plan.verl_config, {**process_env(plan.device, plan.family, metrics_path), **tracking_env(cfg.logger, plan.run_dir, _sweep_dir())})
        except BaseException as exc:  # the summary records the failure; the console gets one line
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, Exception):
                raise TrainingFailed(failure_message(exc, console.log_path)) from exc
            raise
        finally:
            summary = write_summary(plan, started=started, error=error)
    return summary


def _sweep_dir() -> str | None:
    """The `-m` sweep folder when this run is one job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return str(hydra_cfg.sweep.dir) if hydra_cfg.mode == RunMode.MULTIRUN else None


def _parse_overrides(overrides) -> dict:
    out = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"verl override must be key=value, got {item!r}")
        out[key.lstrip("+")] = _yaml_value(value)
    return out


def _yaml_value(text: str):
    import yaml

    return yaml.safe_load(text) if text else None


def _keep_previous_metrics(path: Path) -> None:
    """verl's file logger truncates its file; a resumed run (requeue) keeps the earlier lines aside."""
    if path.exists() and path.stat().st_size:
        attempt = 1
        while path.with_name(f"metrics.attempt{attempt}.jsonl").exists():
            attempt += 1
        path.rename(path.with_name(f"metrics.attempt{attempt}.jsonl"))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_metrics(run_dir: Path) -> list[dict]:
    """Every logged step of the run, earlier attempts first."""
    paths = sorted(run_dir.glob("metrics.attempt*.jsonl"), key=lambda p: int(p.stem.removeprefix("metrics.attempt")))
    return [line for path in [*paths, run_dir / "metrics.jsonl"] if path.exists() for line in read_jsonl(path)]
