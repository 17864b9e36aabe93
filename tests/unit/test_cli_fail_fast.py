"""Mistakes on the command line end in one `radgrpo: error:` line naming what to fix, exit status 2,
before anything is built, queued or started (no tiny model, no generated data, no Ray, no SLURM job)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..conftest import REPO

RADGRPO = [sys.executable, "-m", "radgrpo.cli.train"]


def run_cli(*args, tmp_path, env=None):
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs"), "RADGRPO_CACHE": str(tmp_path / "cache"),
           **(env or {})}
    return subprocess.run([*RADGRPO, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def assert_one_error_line(result, expected, tmp_path):
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("radgrpo: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "ray init" not in result.stdout + result.stderr  # verl prints this when it starts Ray
    assert not (tmp_path / "cache").exists()  # nothing built: no tiny model, no synthetic data


@pytest.mark.parametrize("args,expected", [
    (["model=does_not_exist"], "radgrpo: error: unknown model option 'does_not_exist'; available: "),
    (["data.train_files=/nope.parquet"], "radgrpo: error: data.train_files: file not found: /nope.parquet"),
    (["reward=nonexistent_reward"], "radgrpo: error: unknown reward option 'nonexistent_reward'"),
    (["data=prepared"], "radgrpo: error: data.dir: mandatory, no value given"),
    (["model.family=nope"], "radgrpo: error: model.family 'nope' is unknown; known: gemma3, llava_onevision"),
    (["verl.trainer.total_training_step=3"], "did you mean trainer.total_training_steps"),
    (["model.verl.actor_rollout_ref.model.enable_gradient_chekpointing=true"],
     "(from model.verl.actor_rollout_ref.model.enable_gradient_chekpointing); did you mean "
     "actor_rollout_ref.model.enable_gradient_checkpointing"),
    (["verl.data.train_files=/does/not/exist.parquet"],
     "verl.data.train_files: radgrpo computes verl's data.train_files; set data.train_files (or data.dir)"),
    (["model=qwen2_5_vl_7b", "model.path=/nowhere/model"], "model.path does not exist: /nowhere/model"),
    (["cluster.name=mine"], "cluster=mine: not 'local' and has no 'slurm:' section"),
])
def test_user_errors_fail_fast_with_one_line(args, expected, tmp_path):
    assert_one_error_line(run_cli(*args, tmp_path=tmp_path), expected, tmp_path)


def test_sbatch_refusing_the_job_names_the_setting(tmp_path):
    """A CPU partition refuses a GPU request; sbatch's own message and the setting to change, one line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: "
                                    "Invalid generic resource (gres) specification' >&2\nexit 1\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit wants srun on the submitting machine
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).chmod(0o755)
    result = run_cli("cluster=slurm", tmp_path=tmp_path, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert_one_error_line(result, "sbatch refused the job (sbatch: error: Batch job submission failed: Invalid "
                          "generic resource (gres) specification); check cluster.slurm.gpus_per_node", tmp_path)


def test_no_slurm_on_this_machine_is_one_line(tmp_path):
    result = run_cli("cluster=slurm", tmp_path=tmp_path, env={"PATH": os.path.dirname(sys.executable)})
    assert_one_error_line(result, "cluster=slurm: sbatch and srun not found on this machine", tmp_path)


def test_a_multinode_run_in_a_single_task_allocation_is_one_line(tmp_path):
    result = run_cli("cluster=slurm_multinode", "cluster.device=cpu", tmp_path=tmp_path,
                     env={"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"})
    assert_one_error_line(result, "cluster.nnodes=2 needs one task per node in this SLURM job", tmp_path)


def test_dry_run_prints_the_verl_config_and_starts_nothing(tmp_path):
    result = run_cli("dry_run=true", "verl.trainer.total_training_steps=5", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "total_training_steps: 5" in result.stdout
    assert "name: hf" in result.stdout and "(dry run: nothing started)" in result.stdout
    assert "ray init" not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("summary.json")) and not (tmp_path / "cache").exists()
