"""`radgrpo`: compose a training run from conf/ and run it (here, or on SLURM via cluster=...).

    radgrpo                                   # the embedded default: tiny Qwen2.5-VL, 2 GRPO steps on CPU
    radgrpo model=qwen2_5_vl_7b data=prepared data.dir=/data/vindr cluster=slurm
    radgrpo verl.trainer.total_training_steps=10 dry_run=true
    radgrpo -m sampling=uniform,hard sampling.size=1000,2000,5000 cluster=slurm

`verl.<key>=value` and `<group>.verl.<key>=value` arguments pass through to verl's config (checked
against its schema); they are rewritten to Hydra's force-add form `++...` before Hydra parses them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from radgrpo import CONF_DIR
from radgrpo.cli import exit_without_collecting


def rewrite_verl_overrides(argv: list[str]) -> list[str]:
    """`verl.a.b=1`, `model.verl.a.b=1` -> `++...`: verl keys are not in radgrpo's schema, so Hydra must
    add them (radgrpo checks them against verl's own config instead, see engine.verl_config)."""
    return [f"++{arg.lstrip('+')}" if _is_verl_key(arg) else arg for arg in argv]


def _is_verl_key(arg: str) -> bool:
    key, sep, _ = arg.lstrip("+").partition("=")
    parts = key.split(".")
    return bool(sep) and len(parts) > 1 and (parts[0] == "verl" or (len(parts) > 2 and parts[1] == "verl"))


def unknown_group_option(argv: list[str], conf_dir: Path) -> str | None:
    """One line naming an unknown `group=option` argument and the options that exist, else None.

    Hydra reports the same mistake as a multi-line block with its search path; this check runs first
    so the user sees only what to fix. Sweeps (`a,b`) are checked value by value; Hydra's functional
    syntax (glob(...), range(...)) is left to Hydra.
    """
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        group_dir = conf_dir / key
        if not sep or "." in key or not group_dir.is_dir() or "(" in value or value in ("null", ""):
            continue
        available = sorted(p.stem for p in group_dir.glob("*.yaml"))
        for option in value.split(","):
            if option not in available:
                return f"unknown {key} option '{option}'; available: {', '.join(available)}"
    return None


def _fail(message: str) -> None:
    print(f"radgrpo: error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
def train(cfg: DictConfig) -> dict | None:
    from radgrpo.errors import UserError

    try:
        return _train(cfg)
    except UserError as exc:
        if _sweep_job():
            raise  # radgrpo.cluster.sweep_report records it with the run's log; the sweep goes on
        _fail(str(exc))


def _sweep_job() -> bool:
    """True in one job of a `-m` sweep whose failures the sweep report collects (cluster=slurm sets the
    callback): exiting there would hide the failure from it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.mode == RunMode.MULTIRUN and "sweep_report" in (hydra_cfg.get("callbacks") or {})


def _train(cfg: DictConfig) -> dict | None:
    from radgrpo.runs.plan import plan_run

    if cfg.dry_run:
        plan = plan_run(cfg)
        print(OmegaConf.to_yaml(plan.verl_config))
        print(f"# device={plan.device} run_dir={plan.run_dir} (dry run: nothing started)")
        return None
    if cfg.cluster.name != "local":
        plan_run(cfg)  # fail fast on config errors before any job is queued
    from radgrpo.cluster import launch
    from radgrpo.runs import local
    from radgrpo.runs.console import TrainingFailed

    try:
        summary = launch(cfg, local.run)  # a local run plans (and fails on config errors) before Ray starts
    except TrainingFailed as exc:
        if _sweep_job():
            raise
        _fail(str(exc))
    if summary is not None:
        _print_summary(summary)
    return summary


def _print_summary(summary: dict) -> None:
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in summary.get("final_metrics", {}).items() if v is not None)
    print(f"radgrpo: {summary['status']}: {summary['steps_completed']} steps in {summary['wall_time_s']} s; {metrics}")
    print(f"radgrpo: run folder {summary['run_dir']} (summary.json, metrics.jsonl, checkpoints/)")


def main() -> None:
    exit_without_collecting()
    args = sys.argv[1:]
    problem = unknown_group_option(args, CONF_DIR)
    if problem:
        _fail(problem)
    sys.argv = [sys.argv[0], *rewrite_verl_overrides(args)]
    train()


if __name__ == "__main__":
    main()
