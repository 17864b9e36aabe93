"""Fast checks of the SLURM options and of launch()'s routing; no cluster needed (the runs on a real
SLURM are in test_slurm.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import radgrpo.cluster as cluster
from radgrpo.cluster.submit import executor_parameters, last_error_line

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("option", ["slurm", "slurm_multinode", "site_example"])
def test_slurm_options_select_the_submitit_launcher_and_feed_it_from_cluster_keys(option):
    cfg = composed(f"cluster={option}", "cluster.slurm.partition=p1", "cluster.slurm.qos=high", hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.qos) == ("p1", "high")
    assert launcher.nodes == cfg.cluster.nnodes and launcher.tasks_per_node == 1
    assert launcher.timeout_min == cfg.cluster.slurm.time_min
    assert launcher.max_num_timeout == cfg.cluster.slurm.max_num_timeout
    assert cfg.hydra.callbacks.sweep_report._target_ == "radgrpo.cluster.sweep_report.SweepReport"


def test_multinode_option_defaults_to_two_nodes_and_takes_any_count():
    assert composed("cluster=slurm_multinode").cluster.nnodes == 2
    cfg = composed("cluster=slurm_multinode", "cluster.nnodes=4", hydra=True)
    assert cfg.cluster.nnodes == 4 and cfg.hydra.launcher.nodes == 4


def test_site_preset_values_reach_sbatch():
    params = executor_parameters(composed("cluster=site_example"))
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "my_project"
    assert params["gpus_per_node"] == 4 and params["cpus_per_task"] == 48 and params["mem_gb"] == 480
    assert params["slurm_constraint"] == "a100"
    assert params["slurm_additional_parameters"] == {"exclusive": True}
    assert params["slurm_setup"][0] == "module load cuda/12.4"


def test_unset_sbatch_values_are_left_to_the_site_and_cpu_nodes_ask_for_no_gpu():
    params = executor_parameters(composed("cluster=slurm", "cluster.slurm.gpus_per_node=0"))
    for key in ("slurm_partition", "slurm_account", "slurm_qos", "mem_gb", "slurm_constraint", "gpus_per_node",
                "slurm_setup", "slurm_additional_parameters"):
        assert key not in params, key
    assert params["nodes"] == 1 and params["tasks_per_node"] == 1


@pytest.mark.parametrize("preset, runs", [("tiny_2x2", 4), ("data_size_x_sampling", 18), ("cpu_size_x_sampling", 8)])
def test_sweep_presets_are_multiruns(preset, runs):
    cfg = composed(f"sweep={preset}", hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert math.prod(len(str(v).split(",")) for v in cfg.hydra.sweeper.params.values()) == runs


def test_launch_runs_in_place_for_local_and_inside_a_single_node_slurm_job(monkeypatch):
    calls = []

    def run_local(cfg, ray_address):
        calls.append(ray_address)
        return {"status": "completed"}

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert cluster.launch(OmegaConf.create({"cluster": {"name": "local"}}), run_local) == {"status": "completed"}
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    cfg = OmegaConf.create({"cluster": {"name": "slurm", "nnodes": 1, "slurm": {}}})
    assert cluster.launch(cfg, run_local) == {"status": "completed"}
    assert calls == [None, None]  # a fresh local Ray, no head to join


def test_multinode_inside_an_allocation_without_one_task_per_node_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_NTASKS", "1")
    cfg = OmegaConf.create({"cluster": {"name": "slurm_multinode", "nnodes": 2, "slurm": {}},
                            "paths": {"run_dir": str(tmp_path)}})
    with pytest.raises(RuntimeError, match="one task per node"):
        cluster.launch(cfg, lambda c, e: {})


def test_submitting_without_sbatch_names_the_fix(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="launchers/slurm/up"):
        cluster.launch(OmegaConf.create({"cluster": {"name": "slurm", "nnodes": 1, "slurm": {}}}), lambda c, e: {})


def test_last_error_line_finds_the_exception_in_submitits_trace():
    message = ("Job (task=0) failed during processing with trace:\n----------------------\n"
               "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
               "OSError: /data/model does not appear to have a file named config.json\n\n"
               "----------------------\nYou can check full logs with 'job.stderr(0)'")
    assert last_error_line(message) == "OSError: /data/model does not appear to have a file named config.json"
