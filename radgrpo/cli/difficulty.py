"""`radgrpo-difficulty`: each training row's pass rate under a model, cached for `sampling=hard`.

    radgrpo-difficulty                                  # tiny model, synthetic data, reward=iou, on CPU
    radgrpo-difficulty model=qwen2_5_vl_7b data=prepared data.dir=/data/vindr sampling.estimate.k=16
    radgrpo-difficulty ... cluster=slurm               # one SLURM job; a requeued job resumes its chunks

Same model/data/reward/cluster groups as `radgrpo` (conf/difficulty.yaml); the estimate settings are
`sampling.estimate.*` of conf/sampling/hard.yaml, so a training run given the same overrides reads
the same cache (radgrpo.difficulty). Generation is transformers' `generate` (radgrpo.generation);
the vLLM backend is not implemented: `backend=vllm` stops with one line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from radgrpo import CONF_DIR
from radgrpo.cli import exit_without_collecting
from radgrpo.cli.train import unknown_group_option
from radgrpo.errors import UserError

PROG = "radgrpo-difficulty"


class DifficultyError(UserError, ValueError):
    """A user mistake, reported as one line."""


def _fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(2)


def split_files(cfg: DictConfig, model_path: str) -> list[str]:
    """The files of the split whose pass rates are wanted (the training files by default), generated
    first when the data option is synthetic - the same files the training app reads."""
    from radgrpo.runs.plan import check_data_files, materialise_data

    train, val, _ = materialise_data(cfg.data, cfg.model, cfg.paths.cache, check_data_files(cfg.data))
    if cfg.split not in ("train", "val"):
        raise DifficultyError(f"split must be train or val, got {cfg.split!r}")
    return train if cfg.split == "train" else val


def estimate(cfg: DictConfig, _extra_verl_overrides=()) -> dict:
    """Compute (or read from the cache) the pass-rate table; returns the summary, also written to the
    cache folder and to this run's folder."""
    from radgrpo.difficulty import (SUMMARY, EstimateSettings, estimate_pass_rates, format_histogram,
                                    pass_rate_cache, summarise)
    from radgrpo.generation import HFGenerator, load_rows, reward_scorer
    from radgrpo.rewards.verl_entry import reward_entry
    from radgrpo.runs.plan import resolve_device, resolve_model_path

    if cfg.backend == "vllm":
        raise DifficultyError("backend=vllm is not implemented yet (future work); use backend=hf "
                              "(transformers generate, on CPU or one GPU)")
    if cfg.backend != "hf":
        raise DifficultyError(f"backend must be hf (vllm: not implemented yet), got {cfg.backend!r}")
    if int(cfg.cluster.nnodes) != 1:
        raise DifficultyError(f"radgrpo-difficulty runs on one node; got cluster.nnodes={cfg.cluster.nnodes}")
    device = resolve_device(str(cfg.cluster.device))
    options = reward_entry(cfg.reward)["kwargs"]
    model_path = resolve_model_path(cfg.model, cfg.paths.cache)
    files = split_files(cfg, model_path)
    folder, key = pass_rate_cache(cfg, model_path, files)
    rows = load_rows(files)
    settings = EstimateSettings.from_config(cfg.sampling.estimate)
    print(f"{PROG}: {len(rows)} rows of {cfg.data.name}/{cfg.split}, k={settings.k}, "
          f"temperature={settings.temperature}, pass: {cfg.reward.name} >= {settings.threshold}; cache {folder}",
          flush=True)
    if (folder / "pass_rates.parquet").exists():
        generator = None
    else:
        data_keys = cfg.data.get("verl", {}).get("data", {})
        generator = HFGenerator(model_path, device=device, trust_remote_code=bool(cfg.model.get("trust_remote_code")),
                                prompt_key=str(data_keys.get("prompt_key", "prompt")),
                                image_key=str(data_keys.get("image_key", "images")))
    table, hit = estimate_pass_rates(rows, folder, key, generator, settings, reward_scorer(options),
                                     chunk_size=int(cfg.chunk_size), progress=bool(cfg.progress))
    summary = {**summarise(table, key), "cache_hit": hit, "cache_dir": str(folder),
               "table": str(folder / "pass_rates.parquet")}
    print(f"{PROG}: {'cache hit: ' if hit else ''}{summary['table']}")
    print(format_histogram(summary))
    run_dir = Path(str(cfg.paths.run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SUMMARY).write_text(json.dumps(summary, indent=1))
    return summary


@hydra.main(config_path=str(CONF_DIR), config_name="difficulty", version_base="1.3")
def _app(cfg: DictConfig) -> dict | None:
    from radgrpo.cluster import launch

    try:
        return launch(cfg, estimate)
    except UserError as exc:  # config, SLURM and this app's own mistakes: one line
        _fail(str(exc))


def main() -> None:
    exit_without_collecting()
    problem = unknown_group_option(sys.argv[1:], CONF_DIR)
    if problem:
        _fail(problem)
    _app()


if __name__ == "__main__":
    main()
