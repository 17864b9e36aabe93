"""verl's own Tracking, with radgrpo's hook, logs the redacted verl config plus the radgrpo groups
into a real offline wandb run (read back from its records)."""

from omegaconf import OmegaConf

from radgrpo.tracking.offline import read_offline_run


def test_verl_tracking_logs_radgrpo_groups_and_no_secret(tmp_path, monkeypatch):
    import wandb

    import radgrpo.engine.plugin  # noqa: F401  (installs the hooks, as `import verl` does in verl's processes)
    from verl.utils.tracking import Tracking

    (tmp_path / "radgrpo_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(
        {"model": {"name": "tiny"}, "sampling": {"strategy": "hard", "size": 1000},
         "reward": {"server": {"token": "cfg-token-123456"}}})))
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_DATA_DIR": str(tmp_path / "data"),
           "WANDB_CONFIG_DIR": str(tmp_path / "cfg"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
           "WANDB_RUN_ID": "cfghook", "WANDB_RUN_GROUP": "tiny_2x2: seed", "WANDB_JOB_TYPE": "train",
           "RADGRPO_WANDB_CONFIG": str(tmp_path / "radgrpo_config.yaml"), "HF_TOKEN": "hf_envtoken98765"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    verl_config = {"trainer": {"project_name": "p", "experiment_name": "run1"},
                   "ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {"HF_TOKEN": "hf_envtoken98765"}}}},
                   "reward": {"custom_reward_function": {"reward_kwargs": {"server": {"token": "cfg-token-123456"}}}}}
    tracking = Tracking("p", "run1", default_backend=["wandb"], config=verl_config)
    tracking.log({"reward/iou/mean": 0.5}, step=1)
    tracking.finish()
    wandb.teardown()
    run = read_offline_run(tmp_path, "cfghook")
    assert run.name == "run1" and run.group == "tiny_2x2: seed" and run.job_type == "train"
    assert run.config["radgrpo"]["sampling"] == {"strategy": "hard", "size": 1000}
    assert run.config["radgrpo"]["reward"]["server"]["token"] == "<redacted>"
    assert run.config["trainer"]["experiment_name"] == "run1"
    assert run.config["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]["HF_TOKEN"] == "<redacted>"
    assert run.history[0]["reward/iou/mean"] == 0.5
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name != "radgrpo_config.yaml":
            assert b"hf_envtoken98765" not in path.read_bytes() and b"cfg-token-123456" not in path.read_bytes(), path
