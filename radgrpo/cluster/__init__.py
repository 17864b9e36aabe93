"""Where a run executes: here, on one SLURM node, or across several SLURM nodes with Ray spanning them.

The training app composes its config and hands it here with the function that trains in the current
process (``run_local(cfg, ray_address) -> summary``; ``ray_address`` is None for a fresh local Ray). ``launch`` decides:

- ``cluster.name == "local"``: train here.
- a SLURM option, outside any SLURM job: submit the run with submitit (every sbatch parameter comes
  from ``cluster.slurm.*``), wait for it, return its summary. The submitted job is checkpointable: on
  preemption or timeout (USR2) it requeues itself and verl resumes from the last checkpoint of the
  same run folder.
- a SLURM option, inside a SLURM job (an array task of ``radgrpo -m ... cluster=slurm``, a submitted
  run, or an allocation): one node trains in place; several nodes first bring Ray up across them
  (rank 0 head, other ranks join) and rank 0 trains with ``trainer.nnodes`` set.
"""

from __future__ import annotations

import os
from omegaconf import DictConfig

from radgrpo.cluster.in_job import RunLocal, run_in_allocation
from radgrpo.errors import ConfigError, SlurmRunError

__all__ = ["launch", "inside_slurm_job", "SlurmRunError"]


def inside_slurm_job() -> bool:
    """True in a process SLURM started for a job (batch script, job step, array task)."""
    return bool(os.environ.get("SLURM_JOB_ID"))


def launch(cfg: DictConfig, run_local: RunLocal) -> dict | None:
    """Run ``cfg`` where ``cfg.cluster`` says; return the run summary (None on non-zero Ray ranks)."""
    name = str(cfg.cluster.name)
    if name == "local":
        return run_local(cfg, None)
    if "slurm" not in cfg.cluster:
        raise ConfigError(
            f"cluster={name}: not 'local' and has no 'slurm:' section; "
            "base a site preset on conf/cluster/slurm.yaml (see conf/cluster/site_example.yaml)"
        )
    if inside_slurm_job():
        return run_in_allocation(cfg, run_local)
    from radgrpo.cluster.submit import submit_and_wait

    return submit_and_wait(cfg, run_local)

