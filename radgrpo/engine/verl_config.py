"""Build verl's `ppo_trainer` config from a composed radgrpo config.

radgrpo never copies verl's yaml: it composes verl's own `ppo_trainer` from the installed package
(`verl.trainer.config`) and applies, in order,
  1. the `verl:` mapping of each group option: model, data, reward, algorithm, sampling, cluster, logger;
  2. the device profile (CPU: radgrpo's platform and hf rollout; GPU: verl's vLLM rollout);
  3. the computed keys: model path, data files, reward entry, run names, checkpoint dir, logging;
  4. the user's pass-through `verl.<key>=value` overrides.
Later layers win. Steps 1-3 may add keys verl's schema lacks (e.g. `ray_kwargs.ray_init.num_gpus`);
step 4 is checked: a key verl does not have is an error naming the closest keys it does have, so a
typo never silently does nothing.
"""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

GROUPS_WITH_VERL_KEYS = ("model", "data", "reward", "algorithm", "sampling", "cluster", "logger")

# Nodes of verl's config that are free-form dicts: any key below them is accepted.
OPEN_VERL_NODES = (
    "actor_rollout_ref.model.override_config",
    "ray_kwargs.ray_init",
    "reward.custom_reward_function.reward_kwargs",
    "actor_rollout_ref.rollout.engine_kwargs",
)

FP32_MIXED_PRECISION = {"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"}

# verl on a CPU: values from ../shared/notes/verl-on-cpu.md, each the fix of a measured failure.
CPU_PROFILE = {
    "trainer.device": "cpu",
    "actor_rollout_ref.rollout.name": "hf",
    # `det-<sample index>` request ids: the hf rollout seeds each sample from them (reproducible runs)
    "actor_rollout_ref.rollout.full_determinism": True,
    "actor_rollout_ref.rollout.tensor_model_parallel_size": 1,
    "actor_rollout_ref.rollout.agent.num_workers": 1,
    "actor_rollout_ref.rollout.free_cache_engine": False,
    "actor_rollout_ref.rollout.checkpoint_engine.backend": "naive",
    "actor_rollout_ref.actor.strategy": "fsdp2",
    "actor_rollout_ref.ref.strategy": "fsdp2",
    "actor_rollout_ref.actor.use_torch_compile": False,
    "actor_rollout_ref.ref.use_torch_compile": False,
    "actor_rollout_ref.model.use_remove_padding": False,
    "actor_rollout_ref.model.override_config.attn_implementation": "sdpa",
    "actor_rollout_ref.actor.fsdp_config.param_offload": False,
    # float32 compute (FSDP's default mixed precision is bf16): CPUs gain nothing from bf16, and the hf
    # rollout computes log-probs in float32, so verl's rollout-vs-actor probability check stays tight.
    "actor_rollout_ref.actor.fsdp_config.mixed_precision": FP32_MIXED_PRECISION,
    "actor_rollout_ref.ref.fsdp_config.mixed_precision": FP32_MIXED_PRECISION,
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload": False,
    "reward.num_workers": 1,
    "transfer_queue.backend.SimpleStorage.num_data_storage_units": 2,
    # start-up on 2 cores: the dashboard alone is ~11 Python processes (radgrpo.runs.console prints progress)
    "ray_kwargs.ray_init.include_dashboard": False,
}

GPU_PROFILE = {
    "trainer.device": "cuda",
    "actor_rollout_ref.rollout.name": "vllm",
    "actor_rollout_ref.actor.strategy": "fsdp2",
    "actor_rollout_ref.ref.strategy": "fsdp2",
}


def compose_verl_base() -> DictConfig:
    """verl's own `ppo_trainer` config, as its `main_ppo` would compose it with no overrides.

    Composed once per process (about 2 s) and copied for each caller.
    """
    return copy.deepcopy(_compose_verl_base_once())


@functools.lru_cache(maxsize=1)
def _compose_verl_base_once() -> DictConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    # radgrpo's own Hydra app may be running: compose verl's config in a separate Hydra context
    # and hand radgrpo's back afterwards (its run dir and job info are still needed).
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        with initialize_config_module(config_module="verl.trainer.config", version_base=None):
            cfg = compose(config_name="ppo_trainer")
    finally:
        global_hydra.clear()
        global_hydra.hydra = saved
    OmegaConf.set_struct(cfg, False)
    return cfg


def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; keys that already contain dots are kept as paths."""
    if isinstance(mapping, DictConfig):
        mapping = OmegaConf.to_container(mapping, resolve=True)
    flat: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and not any(path == node for node in OPEN_VERL_NODES):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def _has_key(cfg: DictConfig, path: str) -> bool:
    parent_path, _, leaf = path.rpartition(".")
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    return isinstance(parent, DictConfig) and leaf in parent


def _is_open(path: str) -> bool:
    return any(path.startswith(node + ".") for node in OPEN_VERL_NODES)


def check_user_keys(base: DictConfig, keys: Iterable[str]) -> None:
    """Raise ValueError for a pass-through key verl's config does not have."""
    known = None
    for key in keys:
        if _has_key(base, key) or _is_open(key):
            continue
        if known is None:
            known = list(flatten(base).keys())
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"verl has no config key '{key}' (from the override verl.{key}){hint}")


def apply(cfg: DictConfig, mapping: dict[str, Any]) -> None:
    for key, value in mapping.items():
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)


def computed_keys(rcfg: DictConfig, *, model_path: str, train_files: list[str], val_files: list[str],
                  run_dir: Path, reward_entry: dict[str, Any], device: str) -> dict[str, Any]:
    """The keys radgrpo derives from the composition rather than asks the user for."""
    cluster = rcfg.cluster
    keys = {
        "actor_rollout_ref.model.path": model_path,
        "actor_rollout_ref.model.trust_remote_code": bool(rcfg.model.get("trust_remote_code", False)),
        "data.train_files": train_files,
        "data.val_files": val_files,
        "data.seed": int(rcfg.seed),
        "data.trust_remote_code": bool(rcfg.model.get("trust_remote_code", False)),
        "trainer.project_name": str(rcfg.logger.get("project", "radgrpo")),
        "trainer.experiment_name": str(rcfg.run_name),
        "trainer.default_local_dir": str(run_dir / "checkpoints"),
        "trainer.rollout_data_dir": str(run_dir / "rollouts"),
        "trainer.validation_data_dir": str(run_dir / "validation"),
        "trainer.logger": list(rcfg.logger.backends) + ["file"],
        "trainer.nnodes": int(cluster.nnodes),
        "trainer.n_gpus_per_node": int(cluster.gpus_per_node),
        "actor_rollout_ref.rollout.seed": int(rcfg.seed),
        "ray_kwargs.ray_init.num_cpus": int(cluster.get("ray_num_cpus", 32)),
        # a fresh Ray for this run, never one a `ray start` left running on the machine (the SLURM
        # multi-node launcher points this at its own head instead)
        "ray_kwargs.ray_init.address": "local",
        "reward.custom_reward_function.path": reward_entry["path"],
        "reward.custom_reward_function.name": reward_entry["name"],
        "reward.custom_reward_function.reward_kwargs": reward_entry["kwargs"],
    }
    if device == "cpu":
        keys["ray_kwargs.ray_init.num_gpus"] = int(cluster.gpus_per_node)
    return keys


def build_verl_config(rcfg: DictConfig, *, device: str, computed: dict[str, Any],
                      base: DictConfig | None = None) -> DictConfig:
    """Layer the groups' mappings, the device profile, computed keys and user keys onto verl's config."""
    cfg = base if base is not None else compose_verl_base()
    for group in GROUPS_WITH_VERL_KEYS:
        apply(cfg, flatten(rcfg[group].get("verl", {}) if group in rcfg else {}))
    apply(cfg, CPU_PROFILE if device == "cpu" else GPU_PROFILE)
    apply(cfg, computed)
    user = flatten(rcfg.get("verl", {}))
    check_user_keys(cfg, user.keys())
    apply(cfg, user)
    return cfg


def validate_verl_config(cfg: DictConfig) -> None:
    """verl's own consistency checks (batch sizes, mutually exclusive keys), as its main() runs them."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
