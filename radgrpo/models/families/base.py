"""What radgrpo needs to know about a model family, in one class per family.

verl 0.9.1 assumes Qwen-VL in several places (../shared/notes/model-families.md), and so did radgrpo.
Everything that differs between families lives in a `ModelFamily` subclass in its own module of this
package; the engine's hooks (radgrpo.engine.families_hooks), the hf rollout, the tiny-model builder
and the vision trace ask the active family instead of assuming one. The defaults below are what a
family verl already supports needs (Qwen2.5-VL uses almost all of them).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch


class ModelFamily:
    #: the `model.family` value that selects this family
    name: ClassVar[str]
    #: `config.model_type` of the checkpoints of this family
    model_type: ClassVar[str]
    #: transformers auto class that loads the full model (vision tower included)
    auto_class: ClassVar[str] = "AutoModelForImageTextToText"
    #: transformers class of the full model (what the auto class builds; the vision trace wraps it)
    model_class: ClassVar[str]
    #: the processor's image placeholder token (the one expanded to the image's patch count)
    image_token: ClassVar[str]
    #: special tokens the rollout must never sample (a random tiny model would emit image tokens)
    suppress_tokens: ClassVar[tuple[str, ...]] = ()
    #: the token that ends an assistant turn (appended to warm-start targets)
    end_of_turn: ClassVar[str]
    #: whether verl's own `hf_processor` recognises this processor class
    verl_knows_processor: ClassVar[bool] = False
    #: (module, class) of the vision tower: the vision trace records its forward, and `peft=freeze_vision`
    #: (actor.freeze_vision_tower) freezes every module of this class
    vision_tower: ClassVar[tuple[str, str]]
    #: qualified-name prefixes (in the full model) of the vision side - tower and projector: the only
    #: modules `peft=lora_vision_lm_head` adapts, and modules `peft=lora` leaves alone (lora_exclude,
    #: which the peft options' `lora_scope` turns into verl's `exclude_modules`)
    vision_modules: ClassVar[tuple[str, ...]]
    #: prefixes of towers for inputs radgrpo never feeds (Phi-4-MM's audio): no LoRA option adapts them
    unfed_modules: ClassVar[tuple[str, ...]] = ()
    #: qualified names (in the full model) of a few linear layers inside the vision tower and its
    #: projector, so planning can tell from LoRA target/exclude patterns alone whether an adapter would
    #: reach the vision side (vLLM cannot serve that); a unit test finds each in the tiny model
    vision_linear_samples: ClassVar[tuple[str, ...]]
    #: multimodal input keys whose per-image patch/crop dimension (dim 1) varies with the aspect
    #: ratio, and the value to pad them with when samples of different shapes share a micro-batch
    padded_keys: ClassVar[dict[str, float]] = {}
    #: whether verl's vLLM rollout serves this family's layout (False: a GPU run stops at planning)
    vllm_serves: ClassVar[bool] = True
    #: tiny-model names this family builds (see radgrpo.models.tiny)
    tiny_models: ClassVar[tuple[str, ...]] = ()

    # ----- which modules train ------------------------------------------------------------------
    def lora_exclude(self, adapted: str) -> str:
        """peft's `exclude_modules` regex (a full match on a module's qualified name) that confines LoRA
        to the language model (`adapted="language_model"`: excludes the vision side and unfed towers) or
        to the vision side (`adapted="vision"`: excludes every module outside `vision_modules`)."""
        import re

        def under(prefixes):
            return "(?:" + "|".join(re.escape(p) for p in prefixes) + ")"

        if adapted == "language_model":
            return under(self.vision_modules + self.unfed_modules) + r"\..*"
        if adapted == "vision":
            return "(?!" + under(self.vision_modules) + r"\.).*"
        raise ValueError(f"lora_exclude: adapted must be 'language_model' or 'vision', not {adapted!r}")

    # ----- processor ---------------------------------------------------------------------------
    def torchvision_free_processor(self) -> type | None:
        """The processor class to use when torchvision is absent (None: the stock one works).

        A method, so a family module defines its subclass on first use: importing transformers'
        processing modules costs ~1.8 CPU-s in every Ray process that loads the plugin (measured by
        benchmarks/engine.py), and most of those processes never build a processor.
        """
        return None

    def prepare_processor(self, processor) -> None:
        """Adjust a loaded processor for verl (e.g. no second <bos>); called by the hf_processor hook."""

    def image_token_id(self, tokenizer) -> int:
        return int(tokenizer.convert_tokens_to_ids(self.image_token))

    def config_image_token_id(self, config) -> int:
        """The image placeholder id as the model's config holds it (read by the vision trace)."""
        value = getattr(config, "image_token_id", None)
        return int(value if value is not None else config.image_token_index)

    # ----- image inputs ------------------------------------------------------------------------
    def image_inputs(self, processor, images: list) -> dict[str, torch.Tensor]:
        """Pixel tensors of `images` for one sample, computed by the image processor alone.

        Used by the hf rollout and, for families verl cannot re-encode (actor_inputs), by the actor.
        """
        return dict(processor.image_processor(images=images, return_tensors="pt"))

    def rollout_inputs(self, processor, input_ids: torch.Tensor, images: list) -> dict[str, torch.Tensor]:
        """Everything `generate` needs besides input_ids/attention_mask, for a batch of left-padded
        prompts (`input_ids`, rows x length) and all their images in row order."""
        return self.image_inputs(processor, images)

    def actor_inputs(self, processor, input_ids: torch.Tensor, images: list) -> dict[str, torch.Tensor] | None:
        """The actor's `multi_modal_inputs` for one sample, or None to keep verl's own computation
        (decode the prompt, re-run the processor), which is right for the families verl supports."""
        return None

    def patch_model_classes(self) -> None:
        """Class patches every process needs for this family's forward (Gemma3's token_type_ids, Phi-4-MM's
        bidirectional vision attention); the plugin applies them in every verl process, `load_model`
        before it loads one. Idempotent."""

    def load_model(self, path: str, dtype: torch.dtype, trust_remote_code: bool = False):
        """The policy from `path` with the family's auto class and its class patches (sdpa attention),
        in eval mode: what radgrpo's hf rollout and radgrpo-eval generate with, computing what training
        computed."""
        import transformers

        self.patch_model_classes()
        auto_cls = getattr(transformers, self.auto_class)
        model = auto_cls.from_pretrained(path, dtype=dtype, attn_implementation="sdpa",
                                         trust_remote_code=trust_remote_code)
        return model.eval()

    # ----- tiny model --------------------------------------------------------------------------
    def build_tiny(self, name: str, out: Path) -> None:
        """Write tiny model `name` (weights, tokenizer, processor) into `out`."""
        raise NotImplementedError(f"family {self.name} builds no tiny model")

    def warm_start_batch(self, processor, prompt: str, target: str, image) -> tuple[dict[str, Any], int]:
        """One supervised example for the warm start: the model inputs and the prompt's token count."""
        batch = processor(text=[prompt + target], images=[image], return_tensors="pt")
        prompt_len = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
        return dict(batch), int(prompt_len)


def defined_on_first_use(module_name: str, class_name: str, define: Callable[[], type]):
    """(get, module `__getattr__`) for a class that `define()` builds the first time it is asked for.

    Families subclass transformers' processors; importing those modules costs ~1.8 CPU-s in every Ray
    process that loads radgrpo's plugin, and most never build a processor. The class keeps its module
    path and name (`module.ClassName`), so pickle and AutoProcessor find it as if defined at module level.
    """

    @functools.cache
    def get() -> type:
        cls = define()
        cls.__module__, cls.__qualname__ = module_name, class_name
        return cls

    def module_getattr(name: str):
        if name == class_name:
            return get()
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    return get, module_getattr
