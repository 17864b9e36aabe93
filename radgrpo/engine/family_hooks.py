"""verl 0.9.1's Qwen-VL assumptions, answered by the active model family (radgrpo.models.families).

Installed by the plugin in every process of a run whose RADGRPO_MODEL_FAMILY is set. Each hook asks
the family and does what verl does when the family has nothing to add, so Qwen2.5-VL trains exactly
as with stock verl (model-families.md lists where verl assumes Qwen):
- processor recognition: verl's `hf_processor` turns an unknown processor class into `None` with a
  warning (images then silently vanish, checkpoints hold no processor). The replacement loads the
  processor itself for families verl does not know, binds the model config as verl does, lets the
  family adjust it, and fails loudly instead of returning None. It is rebound in every module that
  imported the function by name before the plugin ran; later importers get it from `verl.utils`.
- actor multimodal inputs: `AgentLoopWorker._compute_multi_modal_inputs` decodes the prompt and
  re-runs the processor, which loses Gemma3's special image tokens; a family may compute them from
  the images instead (`ModelFamily.actor_inputs`).
- padded batch merge: `extract_multi_modal_inputs` concatenates each key along dim 0; keys whose
  per-image patch dimension varies with the aspect ratio (LLaVA-OneVision's anyres patches,
  Phi-4-multimodal's crops) are padded to the micro-batch's largest first.
- model-class patches: `ModelFamily.patch_model_classes` (Gemma3's `token_type_ids`, Phi-4-MM's
  bidirectional vision attention).
"""

from __future__ import annotations

import functools
import sys

import torch

from radgrpo.engine import vision_trace
from radgrpo.engine.after_import import when_imported

HF_PROCESSOR_IMPORTERS = ("verl.utils.tokenizer.tokenizer", "verl.utils.tokenizer", "verl.utils",
                          "verl.workers.config.model", "verl.model_merger.base_model_merger")


# ----- processor ---------------------------------------------------------------------------------
def _hf_processor_for(family, stock):
    @functools.wraps(stock)
    def hf_processor(name_or_path, **kwargs):
        from transformers import AutoConfig, AutoProcessor, PreTrainedTokenizerBase

        if family.verl_knows_processor:
            processor = stock(name_or_path, **kwargs)
        else:
            processor = AutoProcessor.from_pretrained(name_or_path, **kwargs)
            if not isinstance(processor, PreTrainedTokenizerBase):
                processor.config = AutoConfig.from_pretrained(name_or_path, **kwargs)
        if processor is None or isinstance(processor, PreTrainedTokenizerBase):
            raise RuntimeError(f"{name_or_path}: no multimodal processor loaded for model family {family.name} "
                               "(AutoProcessor returned a tokenizer or failed; see the warning above)")
        family.prepare_processor(processor)
        return processor

    hf_processor._radgrpo_family = family.name
    return hf_processor


def _install_processor_hook(family) -> None:
    from verl.utils.tokenizer import tokenizer as tokenizer_module

    stock = getattr(tokenizer_module.hf_processor, "__wrapped__", tokenizer_module.hf_processor)
    replacement = _hf_processor_for(family, stock)
    for name in HF_PROCESSOR_IMPORTERS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "hf_processor"):
            module.hf_processor = replacement
    for name in HF_PROCESSOR_IMPORTERS[3:]:  # not imported yet: rebind when they are
        if name not in sys.modules:
            when_imported(name, lambda module: setattr(module, "hf_processor", replacement))


# ----- actor multimodal inputs -------------------------------------------------------------------
def _patch_agent_loop(family, module) -> None:
    worker = module.AgentLoopWorker
    stock = getattr(worker._compute_multi_modal_inputs, "__wrapped__", worker._compute_multi_modal_inputs)

    @functools.wraps(stock)
    def compute_multi_modal_inputs(self, output, input_ids):
        images = (output.multi_modal_data or {}).get("images")
        inputs = None
        if self.processor is not None and images:
            inputs = family.actor_inputs(self.processor, input_ids, images)
        return stock(self, output, input_ids) if inputs is None else inputs

    worker._compute_multi_modal_inputs = compute_multi_modal_inputs


# ----- batch merge -------------------------------------------------------------------------------
def pad_dim1(values: list[torch.Tensor], fill: float) -> list[torch.Tensor]:
    """Pad every tensor's dim 1 to the largest (tensors of one key, one per sample)."""
    if len({v.shape[1] for v in values}) <= 1:
        return values
    longest = max(v.shape[1] for v in values)
    padded = []
    for value in values:
        extra = value.new_full((value.shape[0], longest - value.shape[1], *value.shape[2:]), fill)
        padded.append(torch.cat([value, extra], dim=1))
    return padded


def _signature(sample) -> dict:
    """What the vision trace records of one sample's inputs: shapes, and image sizes / grids."""
    out = {}
    for key, value in sample.items():
        if isinstance(value, torch.Tensor):
            small = key in ("image_sizes", "image_grid_thw") and value.numel() <= 64
            out[key] = value.tolist() if small else list(value.shape)
    return out


def _merge_for(family, stock):
    from tensordict.tensorclass import NonTensorData

    @functools.wraps(stock)
    def extract_multi_modal_inputs(batch_data, indices=None):
        samples = batch_data if indices is None else [batch_data[i] for i in indices if i < len(batch_data)]
        samples = [s.data if isinstance(s, NonTensorData) else s for s in samples]
        samples = [s for s in samples if s is not None]
        if vision_trace.enabled() and samples:
            vision_trace.record("merge", samples=[_signature(s) for s in samples])
        if family.padded_keys:
            samples = [dict(s) for s in samples]
            for key, fill in family.padded_keys.items():
                present = [i for i, s in enumerate(samples) if s.get(key) is not None]
                for i, value in zip(present, pad_dim1([samples[i][key] for i in present], fill)):
                    samples[i][key] = value
        return stock(samples)

    return extract_multi_modal_inputs


def _install_merge_hook(family) -> None:
    """Replace verl's `extract_multi_modal_inputs` once `verl.utils.model` is imported (only the actor's
    processes import it), also where its FSDP engine imported it by name."""

    def patch_model_utils(model_utils) -> None:
        stock = getattr(model_utils.extract_multi_modal_inputs, "__wrapped__", model_utils.extract_multi_modal_inputs)
        replacement = _merge_for(family, stock)
        model_utils.extract_multi_modal_inputs = replacement
        when_imported("verl.workers.engine.fsdp.transformer_impl",
                      lambda module: setattr(module, "extract_multi_modal_inputs", replacement))

    when_imported("verl.utils.model", patch_model_utils)


def install(family) -> None:
    """Install every hook for `family` (None: outside a radgrpo run, verl stays stock)."""
    if family is None:
        return
    _install_processor_hook(family)
    when_imported("verl.experimental.agent_loop.agent_loop", functools.partial(_patch_agent_loop, family))
    _install_merge_hook(family)
    family.patch_model_classes()
    vision_trace.install(family)
