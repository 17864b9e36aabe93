"""Run verl's PPO trainer in this process, the way `python -m verl.trainer.main_ppo` does.

`run_ppo` is called directly instead of nesting verl's own `@hydra.main` app inside radgrpo's. The
environment every Ray process needs (platform, threads, metrics file) is set here and forwarded
through Ray's runtime env, so the plugin sees the same values in the driver and in every worker.

verl's trainer (`TaskRunnerV1.run`) runs in this process rather than in a Ray actor of its own: the
actor would be one more Python process importing torch and verl (~5 CPU-s) before verl creates any
worker, and this process only waits for it (benchmarks/engine.py: the TransferQueue controller, verl's
first worker, started 7 s after `ray.init`). For the same reason a CPU run's Ray workers are forked
from one process that imported verl once (radgrpo.engine.forkserver).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from radgrpo.engine.step_timing import POLL_ENV as REPLAY_POLL_ENV

# a tiny CPU step generates in a fraction of a second; verl's trainer would look every 2 s
CPU_REPLAY_POLL_S = "0.05"


def process_env(device: str, family: str, metrics_path: Path, threads: int = 1) -> dict[str, str]:
    """Variables for the driver and every Ray worker of a run (`family`: model.family, which selects the
    plugin's family hooks, see radgrpo.models.families)."""
    env = {
        "RADGRPO_MODEL_FAMILY": family,
        "VERL_FILE_LOGGER_PATH": str(metrics_path),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads)),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", str(threads)),
    }
    if os.environ.get("RADGRPO_TRACE_VISION"):
        env["RADGRPO_TRACE_VISION"] = os.environ["RADGRPO_TRACE_VISION"]
    if device == "cpu":
        env["VERL_PLATFORM"] = "cpu"
        env["VERL_ENGINE_DEVICE"] = "cuda"
        env[REPLAY_POLL_ENV] = CPU_REPLAY_POLL_S
    return env


def attach_env(verl_cfg: DictConfig, env: dict[str, str]) -> None:
    """Forward `env` to Ray workers through `ray_kwargs.ray_init.runtime_env.env_vars`; variables the
    config already sets (a user's `verl.` override) win."""
    key = "ray_kwargs.ray_init.runtime_env.env_vars"
    current = OmegaConf.select(verl_cfg, key, default=None)
    existing = OmegaConf.to_container(current, resolve=True) if current is not None else {}
    OmegaConf.update(verl_cfg, key, {**env, **existing}, merge=False, force_add=True)


class _RunHere:
    """`<actor>.run.remote(config)` for an object in this process: runs it, returns a ready ObjectRef."""

    def __init__(self, method) -> None:
        self._method = method

    def remote(self, *args, **kwargs):
        import ray

        self._method(*args, **kwargs)
        return ray.put(None)


class TaskRunnerInThisProcess:
    """verl's `TaskRunnerV1` with the interface `run_ppo` uses (`task_runner_class.remote()`, then
    `ray.get(runner.run.remote(config))`), run by this process.

    Ray has started when `remote()` is called; the environment an actor of this job would get (verl's
    `get_ppo_ray_runtime_env` plus the run's `runtime_env.env_vars`) is applied to this process first,
    so the trainer sees what it saw as an actor.
    """

    def __init__(self) -> None:
        from verl.trainer.main_ppo import TaskRunnerV1

        self.run = _RunHere(TaskRunnerV1.__ray_actor_class__().run)

    # called once Ray is up, before verl asks it for any worker (see `before_workers`)
    steps_before_workers: tuple = ()

    @classmethod
    def before_workers(cls, *steps) -> type:
        """This class, running `steps` (callables) after `ray.init` and before verl creates a worker."""
        return type(cls.__name__, (cls,), {"steps_before_workers": steps})

    @classmethod
    def remote(cls) -> "TaskRunnerInThisProcess":
        import ray

        os.environ.update(ray.get_runtime_context().runtime_env.get("env_vars") or {})
        for step in cls.steps_before_workers:
            step()
        return cls()

    @staticmethod
    def options(**actor_options):
        """verl asks for this only to profile its trainer with Nsight (`global_profiler.tool=nsys` on
        CUDA): that needs the trainer in a Ray actor started with the nsight runtime env, so it gets one."""
        from verl.trainer.main_ppo import TaskRunnerV1

        return TaskRunnerV1.options(**actor_options)


def run_verl(verl_cfg: DictConfig, env: dict[str, str], *, fork_workers: bool) -> None:
    """Train with an already validated `verl_cfg` (see runs.plan); raises on failure. Shuts Ray down after.

    `fork_workers` (cluster.fork_workers): on a CPU run with a Ray of its own, Ray's workers are forked
    from one process that imported verl once (radgrpo.engine.forkserver) instead of each importing it."""
    os.environ.update(env)
    import ray
    import verl  # noqa: F401  (loads radgrpo's plugin with the environment above)
    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    import radgrpo.engine.plugin as plugin

    if not plugin.INSTALLED:
        raise RuntimeError("radgrpo's verl plugin did not load; see the error printed above")
    plugin.apply_environment()  # this process imported verl while planning, before `env` was set
    local_ray = OmegaConf.select(verl_cfg, "ray_kwargs.ray_init.address") in (None, "local")
    runner, fork_server = TaskRunnerInThisProcess, None
    if fork_workers and local_ray and verl_cfg.trainer.device == "cpu":
        from radgrpo.engine.forkserver import ForkServer, py_executable, ray_worker_environment

        fork_server = ForkServer()
        env = {**env, **fork_server.env_vars()}
        OmegaConf.update(verl_cfg, "ray_kwargs.ray_init.runtime_env.py_executable", py_executable(), force_add=True)

        def start_fork_server() -> None:
            fork_server.start(ray_worker_environment())
            print(f"radgrpo: Ray's workers are forked from one process ({fork_server.ready_message})",
                  file=sys.stderr, flush=True)

        runner = TaskRunnerInThisProcess.before_workers(start_fork_server)
    attach_env(verl_cfg, env)
    auto_set_device(verl_cfg)
    try:
        run_ppo(verl_cfg, task_runner_class=runner)
    finally:
        if ray.is_initialized() and local_ray:
            ray.shutdown()  # the Ray this run started; a multi-node head belongs to the SLURM launcher
        if fork_server is not None:
            fork_server.stop()
