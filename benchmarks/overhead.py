"""What radgrpo adds to a verl run's wall time: the embedded default through `radgrpo` vs the same
run as a raw `python -m verl.trainer.main_ppo ...` command line, measured in one session.

The raw command line is derived from radgrpo's own verl config for the run: every key that differs
from verl's defaults becomes a Hydra override (`+key=...` for keys verl's schema lacks), and the
same environment (CPU platform, one thread, metrics file) is set; radgrpo's verl plugin is loaded in
both (it is what makes verl run on a CPU). Runs alternate (radgrpo, raw, radgrpo, raw, ...) after
one warm-up run that builds the tiny model and the synthetic data, so caches are equally warm.
Each run starts only when the previous run's Ray processes have exited, and the order alternates
ABBA (radgrpo, raw, raw, radgrpo, ...) so neither side always follows the other.

    .venv/bin/python benchmarks/overhead.py [--repeats 2]

Prints each run's wall time and the ratio radgrpo / raw of the medians (target: <= 1.05).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

REPO = Path(__file__).resolve().parents[1]


def hydra_value(value) -> str:
    """A value in Hydra's override grammar: strings quoted, lists and dicts as literals."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def raw_command(run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The `python -m verl.trainer.main_ppo` command equivalent to radgrpo's default run."""
    from radgrpo.engine.runner import attach_env, process_env
    from radgrpo.engine.verl_config import flatten, verl_base
    from radgrpo.runs.plan import materialise, plan_run

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.run_dir = str(run_dir)
        cfg.paths.output_root = str(run_dir.parent)
        cfg.paths.cache = os.environ.get("RADGRPO_CACHE", str(Path.home() / ".cache" / "radgrpo"))
        del cfg["hydra"]
    plan = materialise(plan_run(cfg), cfg)
    run_dir.mkdir(parents=True, exist_ok=True)  # radgrpo makes its run folder; verl's file logger does not
    env = process_env(plan.device, plan.family, run_dir / "metrics.jsonl")
    attach_env(plan.verl_config, env)
    base = flatten(verl_base())
    wanted = flatten(plan.verl_config)
    overrides = []
    for key, value in wanted.items():
        if key in base and base[key] == value:
            continue
        prefix = "" if key in base else "+"  # keys verl's yaml lacks (free-form nodes) need `+`
        overrides.append(f"{prefix}{key}={hydra_value(value)}")
    return [sys.executable, "-m", "verl.trainer.main_ppo", *overrides], env


def wait_for_ray_to_exit(limit_s: float = 120.0) -> None:
    """A run's Ray workers outlive its driver by a few seconds; don't time the next run against them."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        leftover = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True)
        if not leftover.stdout.strip():
            return
        time.sleep(1)


def timed(cmd: list[str], env: dict[str, str], log: Path) -> float:
    wait_for_ray_to_exit()
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(cmd, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"run failed ({result.returncode}); see {log}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="pairs of runs (order alternates)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="radgrpo-overhead-"))
    radgrpo = [str(Path(sys.executable).with_name("radgrpo"))]
    radgrpo_env = {"RADGRPO_OUTPUTS": str(work / "radgrpo")}

    print("warm-up run (builds the tiny model and data if needed)...", flush=True)
    timed(radgrpo, radgrpo_env, work / "warmup.log")
    times = {"radgrpo": [], "raw verl": []}
    for i in range(args.repeats):
        order = ("radgrpo", "raw verl") if i % 2 == 0 else ("raw verl", "radgrpo")
        for side in order:
            if side == "radgrpo":
                seconds = timed(radgrpo, radgrpo_env, work / f"radgrpo_{i}.log")
            else:
                cmd, env = raw_command(work / f"raw_{i}")
                seconds = timed(cmd, env, work / f"raw_{i}.log")
            times[side].append(seconds)
            print(f"{side:9s} run {i}: {seconds:.1f} s", flush=True)
    ratio = statistics.median(times["radgrpo"]) / statistics.median(times["raw verl"])
    print(f"median radgrpo {statistics.median(times['radgrpo']):.1f} s, raw verl "
          f"{statistics.median(times['raw verl']):.1f} s; ratio radgrpo/raw = {ratio:.3f} (target <= 1.05)")
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
