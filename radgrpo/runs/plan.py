"""Turn a composed radgrpo config into a run plan: every check a user error can fail, before Ray.

`plan_run` resolves the device, the model folder, the data files and the reward entry, and builds
verl's config - raising `ConfigError` with one line naming what to fix (unknown option, missing file,
bad override, malformed reward config). Nothing here starts Ray or touches a GPU, so `dry_run=true`
and the fail-fast checks cost seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A mistake in the composed config, reported as one line before anything starts."""


@dataclass
class RunPlan:
    run_dir: Path
    device: str
    family: str
    model_path: str
    train_files: list[str]
    val_files: list[str]
    data_dir: Path | None
    verl_config: DictConfig


def resolve_device(requested: str) -> str:
    """`auto` -> `cuda` when torch sees a GPU, else `cpu`."""
    if requested in ("cpu", "cuda"):
        return requested
    if requested != "auto":
        raise ConfigError(f"cluster.device must be auto, cpu or cuda, got {requested!r}")
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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


def check_data_files(data: DictConfig) -> tuple[list[str], list[str]] | None:
    """The configured train/val parquet files, checked; None when the data option generates its own."""
    if data.get("train_files") is None and data.get("generator"):
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
    if data.generator != "synthetic_grounding":
        raise ConfigError(f"data.generator {data.generator!r} is unknown; known: synthetic_grounding")
    from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding

    spec = SyntheticGroundingSpec(
        num_train=int(data.num_train), num_val=int(data.num_val), image_size=int(data.image_size),
        no_finding_fraction=float(data.no_finding_fraction), seed=int(data.seed),
        prompt_style=str(data.prompt_style), mixed_aspect_ratios=bool(data.get("mixed_aspect_ratios", False)),
        min_pixels=model.get("min_pixels"), max_pixels=model.get("max_pixels"),
    )
    folder = generate_synthetic_grounding(spec, Path(cache) / "data")
    return _parquet_files(str(folder / "train"), "data.train_files"), _parquet_files(
        str(folder / "val"), "data.val_files"), folder


def reward_entry(reward: DictConfig) -> dict[str, Any]:
    """verl's custom_reward_function keys for the composed reward option, after validating it."""
    from radgrpo.rewards import validate_reward_config
    from radgrpo.rewards import verl_entry

    options = {k: v for k, v in OmegaConf.to_container(reward, resolve=True).items() if k != "verl"}
    try:
        validate_reward_config(options)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"reward '{reward.get('name')}': {exc}") from exc
    return {"path": str(Path(verl_entry.__file__).resolve()), "name": "compute_score", "kwargs": options}


def plan_run(cfg: DictConfig, *, materialise: bool = True) -> RunPlan:
    """Check and resolve everything; with materialise=False (dry run) build nothing on disk."""
    from radgrpo.engine.verl_config import build_verl_config, computed_keys, validate_verl_config

    run_dir = Path(cfg.paths.run_dir)
    # cheap checks first, so a mistake is reported before a tiny model or a dataset is built
    checked = check_data_files(cfg.data)
    family = check_family(cfg.model)
    model_path = _check_model_path(cfg.model)
    entry = reward_entry(cfg.reward)
    device = resolve_device(str(cfg.cluster.device))
    if device == "cuda" and not family.vllm_serves:
        raise ConfigError(f"model family {family.name} cannot train on GPUs yet: vLLM serves only its remote-code "
                          "layout and radgrpo's hf rollout runs on CPU (README, Model families)")
    try:
        from radgrpo.tracking import tracking_env

        tracking_env(cfg.logger, run_dir)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if materialise:
        model_path = resolve_model_path(cfg.model, cfg.paths.cache)
        train, val, data_dir = materialise_data(cfg.data, cfg.model, cfg.paths.cache, checked)
    else:
        train, val = checked if checked else ([f"<generated by {cfg.data.generator}>"], ["<generated>"])
        data_dir = None
    from radgrpo.sampling import apply_sampling

    try:
        train = apply_sampling(cfg.sampling, train, run_dir, materialise=materialise)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    computed = computed_keys(cfg, model_path=model_path, train_files=train, val_files=val, run_dir=run_dir,
                             reward_entry=entry, device=device)
    try:
        verl_cfg = build_verl_config(cfg, device=device, computed=computed)
        validate_verl_config(verl_cfg)
    except (ValueError, AssertionError) as exc:
        raise ConfigError(str(exc)) from exc
    return RunPlan(run_dir, device, family.name, model_path, train, val, data_dir, verl_cfg)
