"""The family-specific part of an export: which transformers class loads the model, which processor.

Kept to two small functions so a model-family registry can supply them per family later; today they
decide from the Hugging Face config alone, which covers Qwen2.5-VL (and any `...ForConditionalGeneration`
VLM that transformers' AutoModelForImageTextToText knows).
"""

from __future__ import annotations

from typing import Any


def auto_model_class(config: Any):
    """AutoModelForImageTextToText for vision-language configs, AutoModelForCausalLM otherwise."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM


def load_processor(path: str, trust_remote_code: bool = False):
    """The processor (tokenizer, image processor, chat template) of the model the run started from.

    verl's checkpoint keeps a processor only for the families its `hf_processor` recognises, so the
    original model folder is the reliable source. Torchvision-free processor classes are registered
    first (radgrpo.models.processors), as in training.
    """
    from transformers import AutoProcessor

    from radgrpo.models.processors import register_torchvision_free_processors

    register_torchvision_free_processors()
    return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
