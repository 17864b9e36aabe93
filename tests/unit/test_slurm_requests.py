"""What radgrpo asks sbatch for, and what it says when sbatch refuses (no SLURM needed)."""

from __future__ import annotations

import pytest

from radgrpo.cluster.submit import executor_parameters, sbatch_refusal

from .test_config_tree import compose_train


@pytest.mark.parametrize("overrides,gpus", [
    (["cluster.device=cpu"], None),  # CPU nodes: logical GPUs are processes; no --gpus-per-node
    (["cluster.device=cuda", "cluster.gpus_per_node=4"], 4),
    (["cluster.device=auto"], 1),
    (["cluster.device=auto", "cluster.slurm.gpus_per_node=0"], None),
])
def test_the_gpu_request_follows_the_device(overrides, gpus, tmp_path):
    params = executor_parameters(compose_train(["cluster=slurm", *overrides], tmp_path))
    assert params.get("gpus_per_node") == gpus


@pytest.mark.parametrize("stderr,setting", [
    ("sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification",
     "cluster.slurm.gpus_per_node (0 on CPU-only partitions)"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     "cluster.slurm.account"),
    ("sbatch: error: Batch job submission failed: Invalid partition name specified", "cluster.slurm.partition"),
    ("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)",
     "cluster.slurm.time_min"),
    ("sbatch: error: Batch job submission failed: Invalid qos specification", "cluster.slurm.qos"),
    ("sbatch: error: something new", "the cluster.slurm.* settings"),
])
def test_an_sbatch_refusal_names_the_setting(stderr, setting):
    message = sbatch_refusal(stderr + "\n")
    assert message == f"sbatch refused the job ({stderr}); check {setting}"
