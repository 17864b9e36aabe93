"""Which parameters train: the parameter-efficient pieces verl 0.9.1's FSDP engine lacks.

verl builds LoRA itself from `actor_rollout_ref.model.{lora_rank, lora_alpha, target_modules,
exclude_modules}` (peft's `get_peft_model` in `workers/engine/fsdp/transformer_impl.py`). Read in the
installed 0.9.1 source, three things a radiology recipe needs are missing, and this module adds them:
- `actor.freeze_vision_tower` is declared in verl's actor config but read nowhere: radgrpo freezes the
  vision tower when it is set;
- its peft `LoraConfig` has no dropout: radgrpo applies `model.lora.dropout` (verl's key of the same
  meaning for Megatron) to the FSDP adapter;
- nothing trains a module in full beside the adapter (seed 003's lm_head): `model.lora.trainable_modules`
  lists such modules. Their tensors join the adapter's on every adapter weight sync, and the reference
  policy (verl computes it as the actor with the adapter disabled) sees their initial weights.

Installed by the plugin in every process; a config that asks for none of this changes nothing. The
family-specific parts come from the run's model family (radgrpo.models.families): the vision tower's
class (what freeze_vision_tower freezes) and, at planning, its `vision_linear_samples`; the peft options'
`exclude_modules` regexes come from its `vision_modules` (verl_config.group_keys, `peft.lora_scope`).
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from radgrpo.engine.after_import import when_imported

@dataclass(frozen=True)
class TrainableSpec:
    """What radgrpo adds on top of verl's LoRA keys, read from the worker's `actor_rollout_ref` config."""

    freeze_vision_tower: bool = False
    lora_dropout: float = 0.0
    trainable_modules: tuple[str, ...] = ()

    @classmethod
    def from_actor_rollout_ref(cls, cfg: Any) -> "TrainableSpec":
        model = cfg.get("model", {}) or {}
        lora = model.get("lora", {}) or {}
        lora_on = int(model.get("lora_rank", 0) or 0) > 0
        actor = cfg.get("actor", {}) or {}
        return cls(
            freeze_vision_tower=bool(actor.get("freeze_vision_tower", False)),
            lora_dropout=float(lora.get("dropout", 0.0) or 0.0) if lora_on else 0.0,
            trainable_modules=tuple(lora.get("trainable_modules") or ()),
        )

    @property
    def active(self) -> bool:
        return self.freeze_vision_tower or self.lora_dropout > 0 or bool(self.trainable_modules)


def vision_tower_prefixes(module, tower_class: str) -> list[str]:
    """Qualified names of the vision tower(s) in `module` (a transformers model, maybe peft-wrapped): the
    shallowest modules of class `tower_class` (the family's `vision_tower`, e.g. Qwen2.5-VL's `model.visual`,
    Phi-4-MM's `model.embed_tokens_extend.image_embed.img_processor`)."""
    found: list[str] = []
    for name, sub in module.named_modules():
        if type(sub).__name__ == tower_class and not any(name.startswith(p + ".") for p in found):
            found.append(name)
    return found


def _in_prefixes(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def apply_spec(module, spec: TrainableSpec, family=None) -> dict[str, int]:
    """Set requires_grad / LoRA dropout on `module` (before FSDP wraps it); returns parameter counts.
    `family` (radgrpo.models.families, the run's) names the vision tower freeze_vision_tower freezes."""
    import torch

    if spec.lora_dropout > 0:
        from peft.tuners.lora import LoraLayer

        for layer in module.modules():
            if isinstance(layer, LoraLayer):
                for adapter in list(layer.lora_dropout.keys()):
                    layer.lora_dropout[adapter] = torch.nn.Dropout(p=spec.lora_dropout)
        for config in (getattr(module, "peft_config", None) or {}).values():
            config.lora_dropout = spec.lora_dropout  # saved adapters and the rollout's copy say so too
    if spec.freeze_vision_tower:
        if family is None:
            raise ValueError("actor.freeze_vision_tower=true needs the run's model family (RADGRPO_MODEL_FAMILY)")
        tower_class = family.vision_tower[1]
        towers = vision_tower_prefixes(module, tower_class)
        if not towers:
            raise ValueError(f"actor.freeze_vision_tower=true but the model has no vision tower "
                             f"(no module of class {tower_class}, model family {family.name})")
        for name, param in module.named_parameters():
            if _in_prefixes(name, towers):
                param.requires_grad_(False)
    for wanted in spec.trainable_modules:
        hits = [m for n, m in module.named_modules() if n == wanted or n.endswith("." + wanted)]
        if not hits:
            raise ValueError(f"model.lora.trainable_modules: the model has no module named {wanted!r}")
        for hit in hits:
            hit.requires_grad_(True)
    counts = {"trainable": 0, "total": 0}
    for param in module.parameters():
        counts["total"] += param.numel()
        counts["trainable"] += param.numel() if param.requires_grad else 0
    return counts


def full_trainable_names(module) -> list[str]:
    """Trainable parameters that are not LoRA adapters (the `trainable_modules`), by qualified name."""
    return [n for n, p in module.named_parameters() if p.requires_grad and "lora_" not in n]


# ----- patches into verl (installed once per process by the plugin) ------------------------------
_ACTIVE: Optional[TrainableSpec] = None
INSTALLED = False


def install() -> None:
    """Wrap verl's actor worker and FSDP engine when their modules are first imported (at once if they
    are already): only the training worker's process imports them, and importing them costs ~2 CPU-s."""
    global INSTALLED
    if INSTALLED:
        return
    when_imported("verl.workers.engine_workers", _patch_engine_workers)
    when_imported("verl.workers.engine.fsdp.transformer_impl", _patch_transformer_impl)
    INSTALLED = True


def _patch_engine_workers(engine_workers) -> None:
    worker_cls = engine_workers.ActorRolloutRefWorker
    worker_cls.init_model = _wrap_init_model(worker_cls.init_model)


def _patch_transformer_impl(transformer_impl) -> None:
    engine_cls = transformer_impl.FSDPEngine
    engine_cls._build_fsdp_module = _wrap_build_fsdp_module(engine_cls._build_fsdp_module)
    engine_cls.disable_adapter = _disable_adapter
    transformer_impl.collect_lora_params = _wrap_collect_lora_params(transformer_impl.collect_lora_params)


def _wrap_init_model(original):
    """The worker knows the actor config (freeze_vision_tower); its engine, built inside, does not."""

    @functools.wraps(original)  # keeps verl's @register dispatch attributes
    def init_model(self, *args, **kwargs):
        global _ACTIVE
        _ACTIVE = TrainableSpec.from_actor_rollout_ref(self.config)
        try:
            return original(self, *args, **kwargs)
        finally:
            _ACTIVE = None

    return init_model


def _wrap_build_fsdp_module(original):
    def _build_fsdp_module(self, module):
        spec = _ACTIVE
        if spec is not None and spec.active and not self.engine_config.forward_only:
            from radgrpo.models.families import active_family

            counts = apply_spec(module, spec, active_family())
            if self.rank == 0:
                print(f"radgrpo: {counts['trainable']:,} of {counts['total']:,} parameters train ({spec})")
        wrapped = original(self, module)
        names = full_trainable_names(wrapped) if self._is_lora else []
        # initial values of the fully trained modules: the reference policy is the model before training
        self._radgrpo_initial = {n: p.detach().clone() for n, p in wrapped.named_parameters() if n in names}
        return wrapped

    return _build_fsdp_module


@contextlib.contextmanager
def _disable_adapter(self):
    """verl's reference policy under LoRA is the actor with its adapter off; modules trained in full
    beside the adapter are put back to their initial weights for the duration as well."""
    import torch

    initial = getattr(self, "_radgrpo_initial", {}) or {}
    params = dict(self.module.named_parameters()) if initial else {}
    trained = {n: params[n].detach().clone() for n in initial}
    with torch.no_grad():
        for n, value in initial.items():
            params[n].copy_(value)
    try:
        with self.module.disable_adapter():
            yield
    finally:
        with torch.no_grad():
            for n, value in trained.items():
                params[n].copy_(value)


def _wrap_collect_lora_params(original):
    def collect_lora_params(module, layered_summon: bool, base_sync_done: bool):
        params = original(module, layered_summon, base_sync_done)
        if base_sync_done:  # adapter-only sync: modules trained in full travel with the adapter
            peft_model = getattr(module, "_fsdp_wrapped_module", module)
            for name, param in peft_model.named_parameters():
                if param.requires_grad and "lora_" not in name:
                    full = param.full_tensor() if hasattr(param, "full_tensor") else param
                    params[name] = full.detach().cpu()
        return params

    return collect_lora_params


# ----- planning: what the GPU rollout can serve ---------------------------------------------------
def _matches(patterns: Any, name: str, *, all_linear_hits: bool) -> bool:
    """peft's rule: a string is a regex full match (or 'all-linear'); a list matches exact or suffix."""
    if patterns is None:
        return False
    if isinstance(patterns, str):
        if patterns == "all-linear":
            return all_linear_hits
        return re.fullmatch(patterns, name) is not None
    return any(name == p or name.endswith("." + p) for p in patterns)


def lora_reaches_vision(family: str, target_modules: Any, exclude_modules: Any) -> bool:
    """Whether a LoRA config adapts a vision-tower layer of `family` (by the family's sample layer names)."""
    from radgrpo.models.families import get_family

    samples = get_family(family).vision_linear_samples
    return any(_matches(target_modules, s, all_linear_hits=True)
               and not _matches(exclude_modules, s, all_linear_hits=False) for s in samples)


def check_peft_plan(verl_cfg: Any, family: str) -> None:
    """Raise ValueError (one line) for a parameter-efficient setting the chosen rollout cannot serve."""
    model = verl_cfg.actor_rollout_ref.model
    lora = model.get("lora", {}) or {}
    lora_on = int(model.get("lora_rank", 0) or 0) > 0
    trainable = list(lora.get("trainable_modules") or [])
    if trainable and not lora_on:
        raise ValueError("model.lora.trainable_modules needs LoRA (lora_rank > 0): without an adapter every "
                         "module trains already")
    rollout = str(verl_cfg.actor_rollout_ref.rollout.name)
    if not lora_on or rollout != "vllm" or bool(lora.get("merge", False)):
        return
    if lora_reaches_vision(family, model.get("target_modules"), model.get("exclude_modules")):
        raise ValueError("vLLM applies LoRA to the language model only (verl #3922) but this LoRA config adapts "
                         "the vision tower: set verl.actor_rollout_ref.model.lora.merge=true or exclude the vision tower")
    if trainable:
        raise ValueError(f"vLLM's LoRA adapter cannot carry modules trained in full ({', '.join(trainable)}): "
                         "set verl.actor_rollout_ref.model.lora.merge=true")
