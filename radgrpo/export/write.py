"""Export one actor checkpoint to a Hugging Face folder (the work behind `radgrpo-export`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from radgrpo.export import assemble, checkpoint, verify
from radgrpo.export.checkpoint import ExportError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ExportResult:
    actor_dir: Path
    output: Path
    lora: bool
    merged: bool
    max_logit_gap: float | None


def export_checkpoint(actor_dir: Path, output: Path, *, merge: bool = True, dtype: str = "float32",
                      check_atol: float | None = 1e-4, overwrite: bool = False,
                      progress: Callable[[str], None] = print) -> ExportResult:
    """Write `output`: weights (LoRA merged, or base + `adapter/`), config, generation config, processor
    with chat template; then check the logits when `check_atol` is set."""
    from transformers import AutoConfig, GenerationConfig

    from radgrpo.export.family import load_processor

    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if output.exists() and any(output.iterdir()):
        if not overwrite:
            raise ExportError(f"output folder {output} is not empty (overwrite=true replaces it)")
        shutil.rmtree(output)
    source = checkpoint.base_model_path(actor_dir)
    processor = load_processor(source, trust_remote_code=False)
    progress(f"reading checkpoint {actor_dir}")
    config = AutoConfig.from_pretrained(actor_dir / "huggingface")
    state = checkpoint.load_full_state_dict(actor_dir)
    lora = assemble.is_lora_state(state)
    what = f"LoRA on {len(assemble.lora_targets(state))} modules" if lora else "full model"
    progress(f"rebuilding the trained actor ({what})")
    actor = assemble.build_actor(config, state, checkpoint.lora_alpha(actor_dir))
    del state
    reference = verify.logits(actor, verify.probe_inputs(processor)) if check_atol is not None else None

    output.mkdir(parents=True, exist_ok=True)
    if lora and merge:
        progress("merging the LoRA adapter into the weights")
        plain = actor.merge_and_unload(safe_merge=True)
    elif lora:
        progress("saving the adapter to adapter/ beside the base weights")
        actor.peft_config["default"].base_model_name_or_path = str(output)  # the base saved beside it
        actor.save_pretrained(output / "adapter")
        plain = actor.unload()
    else:
        plain = actor
    progress(f"writing {dtype} weights to {output}")
    plain.to(DTYPES[dtype]).save_pretrained(output)
    del plain, actor
    try:
        GenerationConfig.from_pretrained(source).save_pretrained(output)
    except OSError:
        pass  # a model without generation_config.json: transformers derives one from the config
    progress(f"writing the processor and chat template from {source}")
    processor.save_pretrained(output)

    gap = None
    if reference is not None:
        progress("checking: the exported folder vs the trained actor, logits on one image prompt")
        gap = verify.gap_to(reference, output, adapter=lora and not merge)
        if gap > check_atol:
            raise ExportError(f"exported logits differ from the trained actor's by {gap:.3g} > {check_atol:g}"
                              + (f" ({dtype} weights round the float32 actor: raise check_atol or export float32)"
                                 if dtype != "float32" else ""))
        progress(f"check passed: max |logit difference| {gap:.3g} <= {check_atol:g}")
    return ExportResult(actor_dir, output, lora, lora and merge, gap)
