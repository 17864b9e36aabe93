"""Rebuild the trained actor from its state dict, and turn it into a plain (or adapter) HF model.

The actor is rebuilt exactly as verl held it: the architecture from the checkpoint's config and, for
LoRA runs, peft LoRA layers on the very modules the checkpoint has adapters for (rank from the
weights, alpha from verl's metadata). Loading is strict, so a key the rebuild does not expect - or one
it lacks - stops the export instead of being dropped.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from radgrpo.export.checkpoint import ExportError

PEFT_PREFIX = "base_model.model."
LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(.+)\.lora_A\.[^.]+\.weight$")


def is_lora_state(state: dict[str, torch.Tensor]) -> bool:
    return any(".lora_A." in k for k in state)


def lora_targets(state: dict[str, torch.Tensor]) -> list[str]:
    """Qualified names (in the plain model) of the modules carrying an adapter."""
    return sorted({m.group(1) for k in state if (m := LORA_KEY.match(k))})


def build_actor(config: Any, state: dict[str, torch.Tensor], alpha: float | None):
    """The trained actor in float32: a plain model, or a peft model with its adapter unmerged."""
    from radgrpo.export.family import auto_model_class

    model = auto_model_class(config).from_config(config, dtype=torch.float32)
    if is_lora_state(state):
        from peft import LoraConfig, get_peft_model

        targets = lora_targets(state)
        first_a = next(v for k, v in state.items() if ".lora_A." in k)
        if alpha is None:
            raise ExportError("a LoRA checkpoint without lora_train_meta.json: its alpha is unknown")
        rank = int(first_a.shape[0])
        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0))
    result = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    missing = [k for k in result.missing_keys if k not in tied and not k.endswith(tuple(tied))]
    if missing or result.unexpected_keys:
        raise ExportError(f"the checkpoint does not fit the model: missing {missing[:3]}, "
                          f"unexpected {result.unexpected_keys[:3]}")
    return model.eval()
