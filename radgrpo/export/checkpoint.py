"""Find an actor checkpoint in a run folder and read it back as one full state dict.

verl's FSDP checkpoint (`checkpoints/global_step_N/actor/`) holds one `model_world_size_W_rank_R.pt`
per rank (DTensor shards), `fsdp_config.json`, `lora_train_meta.json` for LoRA, and a `huggingface/`
folder with the config. verl's own `model_merger` reassembles the shards but casts every tensor to
bf16 and never merges a LoRA adapter, so radgrpo reads the shards itself (same placement rule) and
keeps the trained precision.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from radgrpo.errors import UserError
from radgrpo.runs.folder import RunFolder

STEP_DIR = re.compile(r"global_step_(\d+)$")


class ExportError(UserError, ValueError):
    """A user-facing problem with the export request, reported as one line."""


def _steps(checkpoints: Path) -> dict[int, Path]:
    return {int(m.group(1)): p for p in checkpoints.iterdir() if (m := STEP_DIR.search(p.name)) and p.is_dir()}


def all_actor_dirs(source: Path) -> list[Path]:
    """The `actor/` folder of every checkpoint of a run (or of its `checkpoints/` folder), oldest first."""
    source = Path(source).expanduser()
    checkpoints = RunFolder(source).checkpoints if RunFolder(source).checkpoints.is_dir() else source
    steps = _steps(checkpoints) if checkpoints.is_dir() else {}
    if not steps:
        return [find_actor_dir(source)]  # one checkpoint named directly, or the error saying what is missing
    return [find_actor_dir(steps[step]) for step in sorted(steps)]


def find_actor_dir(source: Path, step: str | int = "latest") -> Path:
    """The `actor/` folder of one checkpoint. `source` is a run folder, its `checkpoints/` folder, a
    `global_step_N` folder or an `actor/` folder; `step` is `latest` or a step number (ignored when
    `source` already names one checkpoint)."""
    source = Path(source).expanduser()
    if not source.exists():
        raise ExportError(f"no such run or checkpoint folder: {source}")
    if source.name == "actor" and (source / "fsdp_config.json").exists():
        return source
    if STEP_DIR.search(source.name):
        actor = source / "actor"
        if not (actor / "fsdp_config.json").exists():
            raise ExportError(f"{source} holds no FSDP actor checkpoint (actor/fsdp_config.json)")
        return actor
    checkpoints = RunFolder(source).checkpoints if RunFolder(source).checkpoints.is_dir() else source
    steps = _steps(checkpoints) if checkpoints.is_dir() else {}
    if not steps:
        raise ExportError(f"{source} holds no checkpoints (global_step_N folders); train with "
                          "algorithm.save_freq=N to write them")
    if str(step) == "latest":
        chosen = max(steps)
    else:
        try:
            chosen = int(step)
        except ValueError:
            raise ExportError(f"step must be 'latest' or a number, got {step!r}") from None
        if chosen not in steps:
            raise ExportError(f"no checkpoint for step {chosen} in {checkpoints}; steps: {sorted(steps)}")
    return find_actor_dir(steps[chosen])


def run_dir_of(actor_dir: Path) -> Path | None:
    """The run folder an actor checkpoint belongs to (it holds verl_config.yaml), if any."""
    for parent in actor_dir.parents:
        if RunFolder(parent).verl_config.exists():
            return parent
    return None


def default_output(actor_dir: Path) -> Path:
    """`<run>/export/global_step_N` (beside the checkpoints when the run folder is unknown)."""
    step_dir = actor_dir.parent
    run_dir = run_dir_of(actor_dir)
    return (RunFolder(run_dir).export if run_dir else step_dir.parent.parent / "export") / step_dir.name


def base_model_path(actor_dir: Path) -> str:
    """The model the run started from (its processor and generation config), else the checkpoint's
    own `huggingface/` folder."""
    run_dir = run_dir_of(actor_dir)
    if run_dir is not None:
        from omegaconf import OmegaConf

        path = OmegaConf.select(OmegaConf.load(RunFolder(run_dir).verl_config), "actor_rollout_ref.model.path")
        if path and Path(str(path)).expanduser().is_dir():
            return str(Path(str(path)).expanduser())
    return str(actor_dir / "huggingface")


def load_full_state_dict(actor_dir: Path) -> dict[str, torch.Tensor]:
    """Every parameter of the trained actor as a full tensor, in the dtype it was trained in."""
    from torch.distributed.tensor import DTensor

    world_size = int(json.loads((actor_dir / "fsdp_config.json").read_text())["world_size"])
    shards = []
    for rank in range(world_size):
        path = actor_dir / f"model_world_size_{world_size}_rank_{rank}.pt"
        if not path.exists():
            raise ExportError(f"checkpoint shard missing: {path}")
        shards.append(torch.load(path, map_location="cpu", weights_only=False))
    full: dict[str, torch.Tensor] = {}
    for key, first in shards[0].items():
        if not isinstance(first, DTensor):
            full[key] = first  # replicated (buffers, unsharded parameters)
            continue
        placement = first.placements[-1]  # the fsdp mesh dimension (a leading ddp one replicates)
        pieces = [s[key]._local_tensor for s in shards]
        if placement.is_replicate():
            full[key] = pieces[0]
        elif placement.is_shard():
            full[key] = torch.cat(pieces, dim=placement.dim).contiguous()
        else:
            raise ExportError(f"unsupported placement {placement} for {key}")
    return full


def lora_alpha(actor_dir: Path) -> float | None:
    """LoRA alpha from verl's `lora_train_meta.json` (the rank is read off the weights)."""
    meta = actor_dir / "lora_train_meta.json"
    return float(json.loads(meta.read_text())["lora_alpha"]) if meta.exists() else None
