"""Every verl key a user can set - a group option's `verl:` mapping, an experiment, `<group>.verl.<key>=`
or `verl.<key>=` - is checked against verl's schema; a key radgrpo computes names the option to use.
verl's config comes from its flattened yaml, which must equal the Hydra composition it stands for."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from radgrpo.engine.verl_config import check_verl_keys, computed_keys, verl_base
from radgrpo.runs.plan import ConfigError, plan_run

from .test_config_tree import compose_train


def test_the_fast_verl_config_equals_verls_hydra_composition():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            composed = compose(config_name="ppo_trainer")
    finally:
        GlobalHydra.instance().clear()
    assert OmegaConf.to_container(verl_base(), resolve=False) == OmegaConf.to_container(composed, resolve=False)


@pytest.mark.parametrize("override,source", [
    ("++model.verl.actor_rollout_ref.model.enable_gradient_chekpointing=true", "model.verl"),
    ("++algorithm.verl.actor_rollout_ref.actor.ppo_mini_batch=4", "algorithm.verl"),
    ("++verl.trainer.total_training_step=3", "verl"),
])
def test_a_misspelt_key_from_any_source_is_an_error_with_a_suggestion(override, source, tmp_path):
    cfg = compose_train([override, "cluster.device=cpu"], tmp_path)
    key = override.split("=")[0].removeprefix(f"++{source}.")
    with pytest.raises(ConfigError, match=rf"verl has no config key '{key}' \(from {source}\.{key}\); did you mean"):
        plan_run(cfg)


@pytest.mark.parametrize("override,option", [
    ("++verl.data.train_files=/does/not/exist.parquet", "data.train_files (or data.dir)"),
    ("++model.verl.actor_rollout_ref.model.path=/x", "model.path"),
    ("++verl.reward.custom_reward_function.path=/r.py", "reward=<option>"),
    ("++verl.reward.custom_reward_function.reward_kwargs.terms=[]", "reward=<option>"),
    ("++verl.trainer.default_local_dir=/ckpt", "paths.output_root"),
    ("++cluster.verl.trainer.nnodes=2", "cluster.nnodes"),
    ("++verl.ray_kwargs.ray_init.num_gpus=2", "cluster.gpus_per_node"),  # computed on CPU
])
def test_overriding_a_computed_key_names_the_radgrpo_option(override, option, tmp_path):
    cfg = compose_train([override, "cluster.device=cpu"], tmp_path)
    with pytest.raises(ConfigError, match="radgrpo computes verl's") as err:
        plan_run(cfg)
    assert f"set {option}" in str(err.value) and "\n" not in str(err.value)


def test_free_form_nodes_take_any_key(tmp_path):
    cfg = compose_train(["cluster.device=cuda", "++verl.reward.reward_kwargs.max_resp_len=512",
                         "++verl.reward.reward_kwargs.overlong_buffer_cfg.enable=true",
                         "++verl.ray_kwargs.ray_init.num_gpus=8",  # not computed on GPU
                         "++verl.actor_rollout_ref.model.override_config.rope_theta=1e6",
                         "++data.verl.data.mm_processor_kwargs.max_pixels=1000"], tmp_path)
    verl = plan_run(cfg).verl_config
    assert verl.reward.reward_kwargs.overlong_buffer_cfg.enable is True
    assert verl.ray_kwargs.ray_init.num_gpus == 8 and verl.ray_kwargs.ray_init.address == "local"
    assert verl.actor_rollout_ref.model.override_config.rope_theta == 1e6
    assert verl.data.mm_processor_kwargs.max_pixels == 1000


def test_the_check_is_reusable_for_any_mapping():
    check_verl_keys(["actor_rollout_ref.actor.clip_ratio_high", "algorithm.filter_groups.enable"], "algorithm.verl")
    with pytest.raises(ValueError, match="did you mean actor_rollout_ref.actor.clip_ratio_high"):
        check_verl_keys(["actor_rollout_ref.actor.clip_ratio_hihg"], "algorithm.verl")


def test_joining_a_running_ray_passes_its_address_as_a_value(tmp_path):
    cfg = compose_train(["cluster=slurm_multinode", "cluster.device=cpu"], tmp_path)
    entry = {"path": "/r.py", "name": "compute_score", "kwargs": {}}
    keys = computed_keys(cfg, model_path="m", train_files=[], val_files=[], checkpoints=tmp_path / "c",
                         rollouts=tmp_path / "r", validation=tmp_path / "v", reward_entry=entry,
                         device="cpu", ray_address="10.0.0.1:6379")
    assert keys["ray_kwargs.ray_init.address"] == "10.0.0.1:6379" and keys["trainer.nnodes"] == 2
    assert keys["ray_kwargs.ray_init.num_cpus"] is None and keys["ray_kwargs.ray_init.num_gpus"] is None
