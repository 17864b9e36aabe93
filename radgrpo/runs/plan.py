"""A run in two steps: plan (checks only), then materialise (build what the plan names).

`plan_run` checks everything a user can get wrong - missing values, data files, the model folder, the
reward, the device, every verl key - and builds verl's config, raising `ConfigError` with one line
naming what to fix. It writes nothing and starts nothing, so `dry_run=true`, the SLURM pre-submission
check and a mistake in a local run all cost seconds. `materialise` then builds the tiny model, the
synthetic data and the sampled subset the plan refers to, and points verl's config at them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from radgrpo.errors import ConfigError  # noqa: F401  (raised here; callers import it from this module too)


@dataclass
class RunPlan:
    run_dir: Path
    device: str
    family: str
    model_path: str  # a placeholder for a tiny model until materialised
    train_files: list[str]  # placeholders for generated data until materialised
    val_files: list[str]
    data_dir: Path | None  # the prepared or generated dataset folder (its manifest.json), once known
    verl_config: DictConfig
    computed: dict[str, Any]  # the verl keys radgrpo computed (engine.verl_config.computed_keys)
    checked_files: tuple[list[str], list[str]] | None  # None: the data option generates its own


def resolve_device(requested: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`.

    Without a GPU driver's device files torch cannot see a GPU either, so the answer is `cpu` without
    importing torch (seconds of a dry run or a config check); with them, torch decides.
    """
    if requested in ("cpu", "cuda"):
        return requested
    if requested != "auto":
        raise ConfigError(f"cluster.device must be auto, cpu or cuda, got {requested!r}")
    if not gpu_driver_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_driver_present() -> bool:
    """NVIDIA (/dev/nvidia0..) or ROCm (/dev/kfd) device files: a GPU torch.cuda could use."""
    return Path("/dev/kfd").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def resolve_model_path(model: DictConfig, cache: str) -> str:
    """A local folder for tiny models (built on first use) or the configured path / hub id."""
    if model.get("tiny"):
        from radgrpo.models.tiny import ensure_tiny_model

        return str(ensure_tiny_model(model.tiny, Path(cache) / "tiny_models"))
    return _check_model_path(model)


def _check_model_path(model: DictConfig) -> str:
    """The configured path or hub id; a local-looking path must exist. Tiny models are named, not built."""
    if model.get("tiny"):
        return f"<tiny model {model.tiny}, built on first run>"
    path = model.get("path")
    if not path:
        raise ConfigError(f"model.path is not set for model '{model.name}': give a hub id or a local folder")
    looks_local = str(path).startswith(("/", "./", "../", "~"))
    if looks_local and not Path(os.path.expanduser(path)).is_dir():
        raise ConfigError(f"model.path does not exist: {path} (model '{model.name}')")
    return str(path)


def check_family(model: DictConfig):
    """The model's family (radgrpo.models.families); its tiny model, if any, must be one it builds."""
    from radgrpo.models.families import UnknownFamily, get_family

    try:
        family = get_family(str(model.get("family")))
    except UnknownFamily as exc:
        raise ConfigError(str(exc)) from None
    if model.get("tiny") and model.tiny not in family.tiny_models:
        raise ConfigError(f"model.tiny '{model.tiny}' is not a tiny model of family {family.name} "
                          f"(it builds: {', '.join(family.tiny_models)})")
    return family


def _parquet_files(spec: Any, key: str) -> list[str]:
    """Expand a file, a folder of parquet shards, or a list of either; every entry must exist."""
    entries = [spec] if isinstance(spec, str) else list(spec or [])
    files: list[str] = []
    for entry in entries:
        path = Path(os.path.expanduser(str(entry)))
        if path.is_dir():
            shards = sorted(str(p) for p in path.glob("*.parquet"))
            if not shards:
                raise ConfigError(f"{key}: folder {path} holds no .parquet files")
            files.extend(shards)
        elif path.is_file():
            files.append(str(path))
        else:
            raise ConfigError(f"{key}: file not found: {entry}")
    if not files:
        raise ConfigError(f"{key} is empty: set data.{key.split('.')[-1]} or use a data option with a generator")
    return files


DATA_GENERATORS = ("synthetic_grounding",)


def check_data_files(data: DictConfig) -> tuple[list[str], list[str]] | None:
    """The configured train/val parquet files, checked; None when the data option generates its own."""
    if data.get("train_files") is None and data.get("generator"):
        if data.generator not in DATA_GENERATORS:
            raise ConfigError(f"data.generator {data.generator!r} is unknown; known: {', '.join(DATA_GENERATORS)}")
        return None
    return _parquet_files(data.get("train_files"), "data.train_files"), _parquet_files(
        data.get("val_files"), "data.val_files")


def materialise_data(data: DictConfig, model: DictConfig, cache: str,
                     checked: tuple[list[str], list[str]] | None) -> tuple[list[str], list[str], Path | None]:
    """The checked files (see check_data_files), or synthetic data generated when the option asks for
    it; returns train files, val files, dataset dir."""
    if checked is not None:
        train, val = checked
        first = Path(train[0]).parent
        data_dir = first.parent if (first.parent / "manifest.json").exists() else None
        return train, val, data_dir
    from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding

    spec = SyntheticGroundingSpec(
        num_train=int(data.num_train), num_val=int(data.num_val), image_size=int(data.image_size),
        no_finding_fraction=float(data.no_finding_fraction), seed=int(data.seed),
        prompt=OmegaConf.to_container(data.prompt, resolve=True), min_pixels=model.get("min_pixels"), max_pixels=model.get("max_pixels"),
        mixed_aspect_ratios=bool(data.get("mixed_aspect_ratios", False)),
    )
    folder = generate_synthetic_grounding(spec, Path(cache) / "data")
    return _parquet_files(str(folder / "train"), "data.train_files"), _parquet_files(
        str(folder / "val"), "data.val_files"), folder


@dataclass(frozen=True)
class SuiteSet:
    """One dataset of a suite (conf/suite): name, task, parquet files (None: the data option's val split)."""

    name: str
    task: str
    files: tuple[str, ...] | None


def suite_sets(suite: DictConfig) -> list[SuiteSet]:
    """A suite's sets with their files checked (`radgrpo-eval` scores them; `radgrpo suite=...` adds
    them to verl's validation files)."""
    sets = []
    for entry in suite.sets:
        files = None
        if entry.get("files"):
            spec = entry.files if isinstance(entry.files, str) else OmegaConf.to_container(entry.files)
            files = tuple(_parquet_files(spec, f"suite.sets.{entry.name}.files"))
        sets.append(SuiteSet(str(entry.name), str(entry.task), files))
    return sets


def suite_val_files(cfg: DictConfig) -> list[str]:
    """`radgrpo suite=<name>`: the suite's datasets as extra validation sets, so verl reports each per
    data source during training (`val-core/<data_source>/reward/mean@1`). verl scores validation with
    the training reward, so a set of another task than the data's needs a reward routed by task (or by
    data source) that covers it."""
    suite = cfg.get("suite")
    if not suite:
        return []
    reward = cfg.reward
    routes = reward.get("routes")
    by = reward.get("route_by") or "task"
    files: list[str] = []
    for entry in suite_sets(suite):
        covered = entry.task == cfg.data.task or (routes is not None and (
            by == "data_source" or entry.task in routes or "default" in routes))
        if not covered:
            raise ConfigError(f"suite {suite.name}: set {entry.name!r} is a {entry.task} set, but reward={reward.name} "
                              f"scores {cfg.data.task}; validate it with a reward routed by task (e.g. reward=radvlm_tasks)")
        files.extend(entry.files or ())
    return files


def with_suite(val: list[str], extra: list[str]) -> list[str]:
    return list(dict.fromkeys([*val, *extra]))


def missing_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """The `???` values left in the composed config (OmegaConf.missing_keys resolves interpolations on
    the way and fails on the first one that refers to a missing value)."""
    found = []
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            found.append(path)
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not OmegaConf.is_interpolation(cfg, key):
            found.extend(missing_keys(node, f"{path}."))
    return found


def plan_run(cfg: DictConfig, *, ray_address: str | None = None) -> RunPlan:
    """Check everything and build verl's config; writes nothing (see the module docstring).

    `ray_address`: join this running Ray cluster (the SLURM multi-node head) instead of starting one.
    """
    from radgrpo.engine.trainable import check_peft_plan
    from radgrpo.engine.algorithms import check_algorithm
    from radgrpo.engine.verl_config import build_verl_config, computed_keys, validate_verl_config
    from radgrpo.rewards.verl_entry import result_keys
    from radgrpo.runs.folder import RunFolder
    from radgrpo.sampling import apply_sampling
    from radgrpo.tracking import tracking_env

    missing = missing_keys(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)}: mandatory, no value given; set it on the command line "
                          f"({missing[0]}=...)")
    folder = RunFolder(Path(cfg.paths.run_dir))
    checked = check_data_files(cfg.data)
    family = check_family(cfg.model)
    model_path = _check_model_path(cfg.model)
    from radgrpo.rewards.verl_entry import reward_entry

    entry = reward_entry(cfg.reward)
    device = resolve_device(str(cfg.cluster.device))
    if device == "cuda" and not family.vllm_serves:
        raise ConfigError(f"model family {family.name} cannot train on GPUs yet: vLLM serves only its remote-code "
                          "layout and radgrpo's hf rollout runs on CPU (README, Model families)")
    train, val = checked if checked else ([f"<generated by {cfg.data.generator}>"], ["<generated>"])
    val = with_suite(val, suite_val_files(cfg))
    try:
        tracking_env(cfg.logger, folder.root)
        train = apply_sampling(cfg.sampling, train, folder.data, materialise=False)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    computed = computed_keys(cfg, model_path=model_path, train_files=train, val_files=val, checkpoints=folder.checkpoints, validation=folder.validation,
                             rollouts=folder.rollouts,
                             reward_entry=entry, device=device, ray_address=ray_address)
    try:
        verl_cfg = build_verl_config(cfg, device=device, computed=computed)
        validate_verl_config(verl_cfg)
        check_peft_plan(verl_cfg, str(cfg.model.family))
        check_algorithm(verl_cfg, result_keys(entry["kwargs"]))
    except (ValueError, AssertionError) as exc:
        raise ConfigError(str(exc)) from exc
    return RunPlan(folder.root, device, family.name, model_path, train, val, None, verl_cfg, computed, checked)


def materialise(plan: RunPlan, cfg: DictConfig) -> RunPlan:
    """Build the tiny model, the generated data and the sampled subset the plan names, and point verl's
    config at them (the computed keys, re-applied). Returns the updated plan."""
    from dataclasses import replace

    from radgrpo.engine.verl_config import apply
    from radgrpo.runs.folder import RunFolder
    from radgrpo.sampling import apply_sampling

    from radgrpo.difficulty import cached_pass_rates

    model_path = resolve_model_path(cfg.model, cfg.paths.cache)
    train, val, data_dir = materialise_data(cfg.data, cfg.model, cfg.paths.cache, plan.checked_files)
    val = with_suite(val, suite_val_files(cfg))
    try:
        train = apply_sampling(cfg.sampling, train, RunFolder(plan.run_dir).data, materialise=True,
                               pass_rates=cached_pass_rates(cfg, model_path))
    except ValueError as exc:  # what the plan could not check: a subset of generated data
        raise ConfigError(str(exc)) from exc
    computed = {**plan.computed, "actor_rollout_ref.model.path": model_path, "data.train_files": train,
                "data.val_files": val}
    apply(plan.verl_config, computed)
    return replace(plan, model_path=model_path, train_files=train, val_files=val, data_dir=data_dir,
                   computed=computed)
