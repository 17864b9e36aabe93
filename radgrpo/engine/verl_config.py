"""Build verl's `ppo_trainer` config from a composed radgrpo config.

radgrpo never copies verl's yaml: it starts from the installed verl's own `ppo_trainer` config and
applies, in order,
  1. the `verl:` mapping of each group option: model, peft, data, reward, algorithm, sampling, cluster, logger;
  2. the device profile (CPU: radgrpo's platform and hf rollout; GPU: verl's vLLM rollout);
  3. the computed keys: model path, data files, reward entry, run names, checkpoint dir, logging;
  4. the user's pass-through `verl.<key>=value` overrides.
Later layers win. Every key a user can set - a group's mapping (also from an experiment preset or
`<group>.verl.<key>=` on the command line) and `verl.<key>=` - is checked: a key verl does not have is
an error naming the closest keys it does have, and a key radgrpo computes is an error naming the
radgrpo option that sets it, so a typo or a stray override never silently does something else.

verl's config is read from the flattened `_generated_ppo_trainer.yaml` verl ships beside
`ppo_trainer.yaml` (verl generates it from the same Hydra composition; a test checks the two agree for
the pinned verl), which takes a fraction of a second where composing through Hydra takes seconds.
"""

from __future__ import annotations

import copy
import difflib
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

GROUPS_WITH_VERL_KEYS = ("model", "peft", "data", "reward", "algorithm", "sampling", "cluster", "logger")

# Free-form nodes verl's yaml does not spell out (its empty `{}` nodes are free-form too): any key
# below them is accepted. reward.reward_kwargs feeds reward managers such as DAPO's.
OPEN_VERL_NODES = (
    "ray_kwargs.ray_init",
    "reward.reward_kwargs",
    "reward.custom_reward_function.reward_kwargs",
    "actor_rollout_ref.actor.fsdp_config.mixed_precision",
    "actor_rollout_ref.ref.fsdp_config.mixed_precision",
    # verl's HFModelConfig.lora is a free dict (Megatron's LoRA keys); radgrpo adds trainable_modules
    "actor_rollout_ref.model.lora",
    # verl's FSDP wrap reads `transformer_layer_cls_to_wrap` from it (utils/fsdp_utils.py), absent from its yaml
    "actor_rollout_ref.actor.fsdp_config.wrap_policy",
    "actor_rollout_ref.ref.fsdp_config.wrap_policy",
)

# The verl keys radgrpo computes, and the radgrpo option to set instead.
COMPUTED_FROM = {
    "actor_rollout_ref.model.path": "model.path",
    "actor_rollout_ref.model.trust_remote_code": "model.trust_remote_code",
    "data.trust_remote_code": "model.trust_remote_code",
    "data.train_files": "data.train_files (or data.dir)",
    "data.val_files": "data.val_files (or data.dir)",
    "data.seed": "seed",
    "actor_rollout_ref.rollout.seed": "seed",
    "trainer.project_name": "logger.project",
    "trainer.experiment_name": "run_name",
    "trainer.default_local_dir": "paths.output_root (checkpoints live in <run folder>/checkpoints)",
    "trainer.rollout_data_dir": "paths.output_root (rollouts live in <run folder>/rollouts)",
    "trainer.validation_data_dir": "paths.output_root (validation dumps live in <run folder>/validation)",
    "trainer.logger": "logger=<option>",
    "trainer.nnodes": "cluster.nnodes",
    "trainer.n_gpus_per_node": "cluster.gpus_per_node",
    "ray_kwargs.ray_init.num_cpus": "cluster.ray_num_cpus",
    "ray_kwargs.ray_init.num_gpus": "cluster.gpus_per_node",
    "ray_kwargs.ray_init.address": "cluster=<option> (a fresh local Ray, or the SLURM job's own)",
    "ray_kwargs.ray_init._system_config": "the `ray start` of the cluster joined (Ray accepts it only when starting one)",
    "reward.custom_reward_function.path": "reward=<option>",
    "reward.custom_reward_function.name": "reward=<option>",
    "reward.custom_reward_function.reward_kwargs": "reward=<option> (its terms and params)",
}

# Ray's raylet prestarts one idle Python worker per physical core (2 here) when the driver connects.
# They start without the job's runtime env, so no verl actor can use them: each run paid ~1.2 CPU-s for
# two idle processes, competing with the driver (which runs verl's trainer) for the two cores at start-up.
# Metrics collection feeds Ray's dashboard, which a CPU run does not start. (Names from Ray 2.60's
# RayConfig, ray_config_def.h: the raylet and GCS binaries read them from `_system_config`.)
RAY_SYSTEM_CONFIG = {"prestart_worker_first_driver": False, "enable_worker_prestart": False,
                     "enable_metrics_collection": False}

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
    # start-up on a CPU machine is Python processes importing torch/verl one after another: one
    # TransferQueue storage unit (verl's default 8 balances load across nodes), and no Ray dashboard
    # (about 11 processes; radgrpo.runs.console prints progress)
    "transfer_queue.backend.SimpleStorage.num_data_storage_units": 1,
    "ray_kwargs.ray_init.include_dashboard": False,
    # the Ray this run starts (a joined cluster keeps its own, see computed_keys):
    "ray_kwargs.ray_init._system_config": RAY_SYSTEM_CONFIG,
}

GPU_PROFILE = {
    "trainer.device": "cuda",
    "actor_rollout_ref.rollout.name": "vllm",
    "actor_rollout_ref.actor.strategy": "fsdp2",
    "actor_rollout_ref.ref.strategy": "fsdp2",
}


GENERATED_CONFIG = "trainer/config/_generated_ppo_trainer.yaml"
# ppo_trainer.yaml's defaults-list choice, which the generated file leaves out (Hydra keeps it as a key)
MODEL_ENGINE = "dp"


def verl_base() -> DictConfig:
    """verl's own `ppo_trainer` config, as its `main_ppo` composes it with no overrides (a fresh copy)."""
    return copy.deepcopy(_load_verl_base())


@functools.lru_cache(maxsize=1)
def _load_verl_base() -> DictConfig:
    spec = importlib.util.find_spec("verl")  # locates the package without importing it (and torch)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("verl is not installed: pip install radgrpo's dependencies (verl==0.9.1)")
    cfg = OmegaConf.load(Path(spec.submodule_search_locations[0]) / GENERATED_CONFIG)
    cfg = OmegaConf.merge({"model_engine": MODEL_ENGINE}, cfg)
    OmegaConf.set_struct(cfg, False)
    return cfg


def flatten(mapping: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, down to the leaves (free-form nodes too, so a key set below one
    adds to it rather than replacing it); keys that already contain dots are kept as paths."""
    if isinstance(mapping, DictConfig):
        mapping = OmegaConf.to_container(mapping, resolve=True)
    flat: dict[str, Any] = {}
    for key, value in (mapping or {}).items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def _is_known(base: DictConfig, path: str) -> bool:
    """The path exists in verl's config, or lies below a free-form node (explicit or an empty `{}`)."""
    if any(path.startswith(node + ".") for node in OPEN_VERL_NODES):
        return True
    node: Any = base
    for i, part in enumerate(path.split(".")):
        if not isinstance(node, DictConfig):
            return False
        if i and len(node) == 0:
            return True
        if part not in node:
            return False
        node = node._get_node(part)
    return True


@functools.lru_cache(maxsize=1)
def _known_paths() -> tuple[str, ...]:
    return tuple(flatten(_load_verl_base()))


def check_verl_keys(keys: Iterable[str], source: str, computed: Iterable[str] = ()) -> None:
    """Raise ValueError (one line) for a key verl's config does not have, with the closest keys it has,
    or for a key radgrpo computes, naming the radgrpo option to use. `source` names where the keys come
    from (`verl`, `model.verl`, ...); group options, experiments and the command line all pass here."""
    base = _load_verl_base()
    computed = set(computed)
    for key in keys:
        if key in computed or any(key.startswith(c + ".") for c in computed):
            owner = next(c for c in computed if key == c or key.startswith(c + "."))
            raise ValueError(f"{source}.{key}: radgrpo computes verl's {owner}; "
                             f"set {COMPUTED_FROM.get(owner, 'the radgrpo option')} instead")
        if _is_known(base, key):
            continue
        close = difflib.get_close_matches(key, _known_paths(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"verl has no config key '{key}' (from {source}.{key}){hint}")


def apply(cfg: DictConfig, mapping: dict[str, Any]) -> None:
    for key, value in mapping.items():
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)


def computed_keys(rcfg: DictConfig, *, model_path: str, train_files: list[str], val_files: list[str],
                  checkpoints: Path, rollouts: Path, validation: Path, reward_entry: dict[str, Any], device: str,
                  ray_address: str | None = None) -> dict[str, Any]:
    """The keys radgrpo derives from the composition rather than asks the user for (see COMPUTED_FROM).

    `checkpoints`, `rollouts`, `validation`: the run folder's (radgrpo.runs.folder). `ray_address`: a running Ray cluster to join (the SLURM multi-node head), whose nodes already
    declare their CPUs and GPUs; None starts a fresh local Ray sized from `cluster.*`.
    """
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
        "trainer.default_local_dir": str(checkpoints),
        "trainer.rollout_data_dir": str(rollouts),
        "trainer.validation_data_dir": str(validation),
        "trainer.logger": list(rcfg.logger.backends) + ["file"],
        "trainer.nnodes": int(cluster.nnodes),
        "trainer.n_gpus_per_node": int(cluster.gpus_per_node),
        "actor_rollout_ref.rollout.seed": int(rcfg.seed),
        # a fresh Ray for this run, never one a `ray start` left running on the machine
        "ray_kwargs.ray_init.address": ray_address or "local",
        "ray_kwargs.ray_init.num_cpus": None if ray_address else int(cluster.get("ray_num_cpus", 32)),
        "reward.custom_reward_function.path": reward_entry["path"],
        "reward.custom_reward_function.name": reward_entry["name"],
        "reward.custom_reward_function.reward_kwargs": reward_entry["kwargs"],
    }
    if device == "cpu":  # logical GPUs: one per training process
        keys["ray_kwargs.ray_init.num_gpus"] = None if ray_address else int(cluster.gpus_per_node)
    if ray_address:  # ray.init refuses _system_config when it joins a running cluster
        keys["ray_kwargs.ray_init._system_config"] = None
    return keys


def build_verl_config(rcfg: DictConfig, *, device: str, computed: dict[str, Any]) -> DictConfig:
    """Layer the groups' mappings, the device profile, computed keys and user keys onto verl's config;
    every group's and the user's keys are checked first (check_verl_keys, check_owned_keys)."""
    groups = [group for group in GROUPS_WITH_VERL_KEYS if group in rcfg]
    layers = [(f"{group}.verl", group_keys(rcfg, group)) for group in groups]
    user = flatten(rcfg.get("verl", {}))
    for source, keys in [*layers, ("verl", user)]:
        check_verl_keys(keys, source, computed)
    check_owned_keys(rcfg, groups)
    cfg = verl_base()
    for _, keys in layers:
        apply(cfg, keys)
    apply(cfg, CPU_PROFILE if device == "cpu" else GPU_PROFILE)
    apply(cfg, computed)
    apply(cfg, user)
    return cfg


def group_keys(rcfg: DictConfig, group: str) -> dict[str, Any]:
    """A group option's verl keys, flattened. The `peft` option's `lora_scope` (`language_model` or
    `vision`) adds verl's `exclude_modules`: the regex that confines LoRA to that side of the model,
    from the model family's module names (ModelFamily.lora_exclude) - unless the option sets it itself."""
    keys = flatten(rcfg[group].get("verl", {}))
    scope = rcfg[group].get("lora_scope") if group == "peft" else None
    if scope:
        from radgrpo.models.families import get_family

        keys.setdefault("actor_rollout_ref.model.exclude_modules",
                        get_family(str(rcfg.model.family)).lora_exclude(str(scope)))
    return keys


_OPTION_REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")


def check_owned_keys(rcfg: DictConfig, groups: Iterable[str]) -> None:
    """Raise ValueError when one group's mapping sets a verl key that another group's mapping takes from
    a radgrpo option (`data.train_batch_size: ${algorithm.train_batch_size}`): the later layer would win
    silently, so the message names the option to set instead. `verl.<key>=` (applied last) may."""
    owners: dict[str, tuple[str, str]] = {}
    raw = {group: flatten(OmegaConf.to_container(rcfg[group].verl, resolve=False))
           for group in groups if isinstance(rcfg[group].get("verl"), DictConfig)}
    for group, keys in raw.items():
        for key, value in keys.items():
            match = _OPTION_REFERENCE.match(value) if isinstance(value, str) else None
            if match:
                owners[key] = (group, match.group(1))
    for group, keys in raw.items():
        for key in keys:
            owner = owners.get(key)
            if owner and owner[0] != group:
                raise ValueError(f"{group}.verl.{key}: {owner[0]}.verl sets verl's {key} from {owner[1]}; "
                                 f"set {owner[1]} instead")


def uses_reference_policy(cfg: DictConfig) -> bool:
    """verl 0.9.1's `need_reference_policy`: a KL term in the reward or the loss needs the reference model.

    Spelled here (and tested equal to verl's on every algorithm option) because importing
    `verl.trainer.ppo.utils` pulls in verl's workers and core algorithms: 1.4 s of a dry run's ~5.
    """
    return bool(cfg.algorithm.get("use_kl_in_reward", False) or cfg.actor_rollout_ref.actor.use_kl_loss)


def uses_critic(cfg: DictConfig) -> bool:
    """verl 0.9.1's `need_critic`: `critic.enable` when set, else only the GAE estimator needs a critic."""
    if cfg.critic.enable is not None:
        return bool(cfg.critic.enable)
    return cfg.algorithm.adv_estimator == "gae"


def validate_verl_config(cfg: DictConfig) -> None:
    """verl's own consistency checks (batch sizes, mutually exclusive keys), as its main() runs them."""
    from verl.utils.config import validate_config

    validate_config(config=cfg, use_reference_policy=uses_reference_policy(cfg), use_critic=uses_critic(cfg))
