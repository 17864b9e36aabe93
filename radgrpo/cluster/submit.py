"""Submit one run to SLURM with submitit, wait for it, and return its summary.

Every sbatch parameter comes from ``cfg.cluster.slurm`` (the same keys feed hydra-submitit-launcher
for ``-m`` sweeps, see conf/cluster/slurm.yaml). The submitted object is a
``submitit.helpers.Checkpointable``: when SLURM sends USR2 (``scancel --signal=USR2``, preemption, or
the timeout warning) submitit pickles it again and requeues the job; the rerun trains with the same
resolved config, so verl finds ``<run_dir>/checkpoints`` and resumes (``trainer.resume_mode=auto``).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

import submitit
from omegaconf import DictConfig, OmegaConf

from radgrpo.cluster.in_job import RunLocal, run_in_allocation
from radgrpo.errors import SlurmRunError
from radgrpo.errors import last_error_line
from radgrpo.runs.folder import RunFolder

TAG = "[radgrpo.cluster]"


class SlurmRun(submitit.helpers.Checkpointable):
    """The job submitit pickles: the fully resolved config and the function that trains in-process."""

    def __init__(self, cfg: dict, run_local: RunLocal) -> None:
        self.cfg = cfg  # a plain container: no Hydra resolvers are needed on the node
        self.run_local = run_local

    def __call__(self) -> dict | None:
        env = submitit.JobEnvironment()
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        print(
            f"{TAG} job {env.job_id} rank {env.global_rank}/{env.num_tasks} node {env.node} "
            f"({os.environ.get('SLURMD_NODENAME', env.hostname)}) restart {restarts}",
            flush=True,
        )
        return run_in_allocation(OmegaConf.create(self.cfg), self.run_local)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        print(f"{TAG} preempted or timed out: requeueing; the rerun resumes from the latest checkpoint "
              f"in {self.cfg['paths']['run_dir']}/checkpoints", flush=True)
        return super().checkpoint(*args, **kwargs)


def executor_parameters(cfg: DictConfig) -> dict[str, Any]:
    """submitit AutoExecutor parameters from ``cluster.*``; unset (null/empty) values are left out."""
    s = cfg.cluster.slurm
    params = {
        "name": str(cfg.get("run_name", "radgrpo")),
        "timeout_min": s.time_min,
        "nodes": int(cfg.cluster.nnodes),
        "tasks_per_node": 1,  # one process per node: it starts (or joins) Ray there
        "cpus_per_task": s.cpus_per_task,
        "mem_gb": s.mem_gb,
        "gpus_per_node": s.gpus_per_node or None,
        "slurm_partition": s.partition,
        "slurm_account": s.account,
        "slurm_qos": s.qos,
        "slurm_constraint": s.constraint,
        "slurm_signal_delay_s": s.signal_delay_s,
        "slurm_setup": list(s.setup or []) or None,
        "slurm_additional_parameters": OmegaConf.to_container(s.additional_parameters) or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def submit_and_wait(cfg: DictConfig, run_local: RunLocal) -> dict | None:
    _require_slurm_tools(cfg)
    container = OmegaConf.to_container(cfg, resolve=True)
    run_dir = Path(container["paths"]["run_dir"])
    executor = _executor(cfg, RunFolder(run_dir).slurm / "%j")
    job = submit(executor, SlurmRun(container, run_local))
    print(f"{TAG} submitted SLURM job {job.job_id} ({cfg.cluster.name}, {cfg.cluster.nnodes} node(s)); "
          f"waiting. Run dir: {run_dir}", flush=True)
    print(f"{TAG}   log: {job.paths.stdout}", flush=True)
    print(f"{TAG}   err: {job.paths.stderr}", flush=True)
    (result,) = _wait([job])
    print(f"{TAG} SLURM job {job.job_id} finished", flush=True)
    return result


def submit_array_and_wait(cfgs: list[DictConfig], run_local: RunLocal, folder: Path) -> list[dict | None]:
    """One SLURM job array, a task per config (each trains or evaluates `run_local` on its own resolved
    config; the sbatch parameters are the first config's), submitit's logs under `folder`; waits for
    every task and returns their results in order. A failed task fails the whole with its log."""
    _require_slurm_tools(cfgs[0])
    containers = [OmegaConf.to_container(cfg, resolve=True) for cfg in cfgs]
    executor = _executor(cfgs[0], Path(folder) / "%j")
    executor.update_parameters(slurm_array_parallelism=int(cfgs[0].cluster.slurm.array_parallelism))
    jobs = submit_batch(executor, [SlurmRun(c, run_local) for c in containers])
    array_id = jobs[0].job_id.split("_")[0]
    print(f"{TAG} submitted SLURM job array {array_id} ({len(jobs)} tasks, {cfgs[0].cluster.name}); waiting. "
          f"Logs: {jobs[0].paths.folder}", flush=True)
    results = _wait(jobs)
    print(f"{TAG} SLURM job array {array_id} finished", flush=True)
    return results


def _require_slurm_tools(cfg: DictConfig) -> None:
    """sbatch and srun on PATH, checked before anything is resolved or written (one line otherwise)."""
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if missing:
        raise SlurmRunError(
            f"cluster={cfg.cluster.name}: {' and '.join(missing)} not found on this machine; start a one-machine "
            "SLURM with launchers/slurm/up, or run with cluster=local"
        )


def _executor(cfg: DictConfig, folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=int(cfg.cluster.slurm.max_num_timeout))
    executor.update_parameters(**executor_parameters(cfg))
    return executor


def _wait(jobs: list[submitit.Job]) -> list[dict | None]:
    """Each job's result (rank 0's), in order; a failed job is one SlurmRunError line with its log."""
    results = []
    for job in jobs:
        try:
            results.append(job.results()[0])
        except KeyboardInterrupt:
            print(f"{TAG} stopped waiting; job {job.job_id} keeps running (scancel {job.job_id} to stop it)")
            raise
        except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as err:
            raise SlurmRunError(
                f"SLURM job {job.job_id} failed: {last_error_line(str(err))}; log: {job.paths.stderr}"
            ) from None
    return results


# sbatch's refusals ("sbatch: error: Batch job submission failed: ...") and the setting behind each,
# most specific first ("Invalid account or account/partition combination" names both).
SBATCH_SETTINGS = (
    ("generic resource", "cluster.slurm.gpus_per_node (0 on CPU-only partitions)"),
    ("gres", "cluster.slurm.gpus_per_node (0 on CPU-only partitions)"),
    ("account", "cluster.slurm.account"),
    ("partition", "cluster.slurm.partition"),
    ("qos", "cluster.slurm.qos"),
    ("time limit", "cluster.slurm.time_min"),
    ("feature", "cluster.slurm.constraint"),
    ("constraint", "cluster.slurm.constraint"),
    ("memory", "cluster.slurm.mem_gb"),
    ("node configuration", "cluster.slurm.cpus_per_task, cluster.slurm.mem_gb, cluster.slurm.gpus_per_node or "
                           "cluster.nnodes"),
)


def submit(executor: submitit.AutoExecutor, run: SlurmRun) -> submitit.Job:
    """executor.submit, with sbatch's refusal turned into one SlurmRunError line naming the setting."""
    return _sbatch(lambda: executor.submit(run))


def submit_batch(executor: submitit.AutoExecutor, runs: list[SlurmRun]) -> list[submitit.Job]:
    """`runs` as one job array (submitit's batch), sbatch's refusal as in `submit`."""
    def array() -> list[submitit.Job]:
        with executor.batch():
            jobs = [executor.submit(run) for run in runs]
        return jobs

    return _sbatch(array)


def _sbatch(call):
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):  # submitit prints sbatch's stderr; it goes in the message
            return call()
    except submitit.core.utils.FailedJobError as err:
        raise SlurmRunError(sbatch_refusal(str(err) or captured.getvalue())) from None


def sbatch_refusal(stderr: str) -> str:
    """One line: what sbatch said, and which cluster.slurm.* setting to change."""
    said = " ".join(line.strip() for line in stderr.splitlines() if line.strip()) or "no message"
    lowered = said.lower()
    setting = next((s for needle, s in SBATCH_SETTINGS if needle in lowered), "the cluster.slurm.* settings")
    return f"sbatch refused the job ({said}); check {setting}"


