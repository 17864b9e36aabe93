"""wandb settings reach verl's processes through the environment; a requeued run keeps its run id."""

import pytest
from omegaconf import OmegaConf

from radgrpo.tracking import tracking_env


def test_console_logger_sets_nothing(tmp_path):
    assert tracking_env(OmegaConf.create({"backends": ["console"]}), tmp_path) == {}


def test_wandb_offline_env_with_a_stable_run_id_and_sweep_group(tmp_path):
    logger = OmegaConf.create({"backends": ["console", "wandb"], "mode": "offline", "group": None, "tags": ["a", "b"]})
    env = tracking_env(logger, tmp_path / "run", sweep_dir="/o/multirun/2026-11-23/14-00-00")
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path / "run")
    assert env["WANDB_RUN_GROUP"] == "14-00-00" and env["WANDB_TAGS"] == "a,b"
    assert env["WANDB_RESUME"] == "allow"
    assert tracking_env(logger, tmp_path / "run")["WANDB_RUN_ID"] == env["WANDB_RUN_ID"]
    assert tracking_env(logger, tmp_path / "other")["WANDB_RUN_ID"] != env["WANDB_RUN_ID"]


def test_unknown_wandb_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="logger.mode"):
        tracking_env(OmegaConf.create({"backends": ["wandb"], "mode": "sometimes"}), tmp_path)
