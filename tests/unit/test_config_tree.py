"""Every option of every config group composes, and turns into a valid verl config (dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from verl.trainer.ppo.utils import need_critic, need_reference_policy

from radgrpo.engine.verl_config import uses_critic, uses_reference_policy
from radgrpo.runs.plan import ConfigError, plan_run

from ..conftest import CONF_DIR

TRAIN_GROUPS = ("model", "peft", "data", "prompt", "reward", "algorithm", "sampling", "cluster", "logger", "suite",
                "experiment", "sweep")
# Options that need a value only the user can give; composing them must still work.
REQUIRED_USER_VALUES = {("data", "prepared"): {"data.dir"}, ("data", "radvlm_tasks"): {"data.dirs"},
                        # validation suites on prepared sets: tests/unit/test_eval_config.py
                        **{("suite", p.stem): {"suite.root"} for p in (CONF_DIR / "suite").glob("*.yaml")
                           if p.stem != "from_data"},
                        # the seeds' recipes: composed with data in tests/unit/test_recipes.py
                        **{("experiment", name): {"data.dir"} for name in (
                            "chexpo_v2", "medgemma_mcqa", "radvlm_grpo_grounding", "radvlm_grpo_report", "medvlthinker")}}
# Options whose checks must fail until the user points them at local models or a judge endpoint.
NEEDS_LOCAL_RESOURCES = {("reward", "radcliq"), ("reward", "green")}


def all_options():
    for group in TRAIN_GROUPS:
        for path in sorted((CONF_DIR / group).glob("*.yaml")):
            yield group, path.stem


def compose_train(overrides: list[str], tmp_path: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):  # what Hydra sets at run time
        cfg.paths.run_dir = str(tmp_path / "run")
        cfg.paths.output_root = str(tmp_path / "outputs")
        cfg.paths.cache = str(tmp_path / "cache")
        del cfg["hydra"]
    return cfg


@pytest.mark.parametrize("group,option", list(all_options()))
def test_every_option_composes_into_a_verl_config(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    if (group, option) in REQUIRED_USER_VALUES:
        return  # composes; planning needs e.g. data.dir, covered by the prepared-data tests
    if (group, option) in NEEDS_LOCAL_RESOURCES:
        with pytest.raises(ConfigError, match="reward"):
            plan_run(cfg)
        return
    plan = plan_run(cfg)
    verl = plan.verl_config
    # the dry run's own spelling of verl's two role checks (no import of verl's trainer) agrees with verl
    assert uses_critic(verl) == need_critic(verl)
    assert uses_reference_policy(verl) == need_reference_policy(verl)
    if group != "algorithm":  # the algorithm options' own keys: tests/unit/test_algorithms.py
        assert verl.algorithm.adv_estimator == "grpo"
    assert verl.reward.custom_reward_function.path.endswith("radgrpo/rewards/verl_entry.py")
    assert verl.trainer.default_local_dir == str(tmp_path / "run" / "checkpoints")


def test_the_default_is_the_cpu_smoke_run(tmp_path):
    plan = plan_run(compose_train(["cluster.device=cpu"], tmp_path))
    verl = plan.verl_config
    assert plan.device == "cpu"
    assert verl.actor_rollout_ref.rollout.name == "hf"
    assert verl.trainer.total_training_steps >= 2
    assert verl.ray_kwargs.ray_init.num_gpus == 1
    assert verl.actor_rollout_ref.model.override_config.attn_implementation == "sdpa"


def test_gpu_device_uses_verls_vllm_rollout(tmp_path):
    plan = plan_run(compose_train(["cluster.device=cuda", "model=qwen2_5_vl_7b"], tmp_path))
    verl = plan.verl_config
    assert verl.actor_rollout_ref.rollout.name == "vllm"
    assert verl.actor_rollout_ref.model.path == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "num_gpus" not in verl.ray_kwargs.ray_init


def test_pass_through_verl_keys_win_over_group_mappings(tmp_path):
    cfg = compose_train(["++verl.trainer.total_training_steps=7", "++verl.data.max_response_length=16"], tmp_path)
    verl = plan_run(cfg).verl_config
    assert verl.trainer.total_training_steps == 7
    assert verl.data.max_response_length == 16


def test_a_misspelt_verl_key_is_an_error_with_a_suggestion(tmp_path):
    cfg = compose_train(["++verl.trainer.total_training_step=7"], tmp_path)
    with pytest.raises(ConfigError, match="did you mean trainer.total_training_steps"):
        plan_run(cfg)


def test_missing_local_model_folder_is_named(tmp_path):
    cfg = compose_train(["model=qwen2_5_vl_3b", "model.path=/nowhere/qwen"], tmp_path)
    with pytest.raises(ConfigError, match="model.path does not exist: /nowhere/qwen"):
        plan_run(cfg)


def test_a_subset_larger_than_the_data_fails_before_anything_runs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split in ("train", "val"):
        (tmp_path / "ds" / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{"data_source": "x", "extra_info": {"id": str(i)}} for i in range(10)]),
                       tmp_path / "ds" / split / "part-00000.parquet")
    cfg = compose_train(["data=prepared", f"data.dir={tmp_path / 'ds'}", "sampling=uniform", "sampling.size=50"],
                        tmp_path)
    with pytest.raises(ConfigError, match="sampling.size=50 but the training files hold only 10 rows"):
        plan_run(cfg)
