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


def test_step_all_of_a_run_lists_its_checkpoints_for_one_array_task_each(tmp_path):
    from omegaconf import OmegaConf

    from radgrpo.eval.checkpoints import checkpoint_steps

    run = tmp_path / "run"
    for step in (10, 2, 4):
        actor = run / "checkpoints" / f"global_step_{step}" / "actor"
        actor.mkdir(parents=True)
        (actor / "fsdp_config.json").write_text("{}")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    steps = lambda **kw: checkpoint_steps(OmegaConf.create(kw))[1]  # noqa: E731
    assert checkpoint_steps(OmegaConf.create({"checkpoint": str(run / "checkpoints"), "step": "all"})) == (run, [2, 4, 10])
    assert steps(checkpoint=str(run), step="all") == [2, 4, 10]
    assert steps(checkpoint=str(run), step="latest") == [] and steps(checkpoint=str(run), step=4) == []
    assert steps(checkpoint=None, step="all") == [] and steps(checkpoint=str(hf), step="all") == []
