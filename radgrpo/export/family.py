"""The family-specific part of an export, answered by the model-family registry (radgrpo.models.families).

A checkpoint's config names its `model_type`; the registered family with that model type says which
transformers auto class loads the model (e.g. AutoModelForCausalLM for Phi-4-multimodal's native
layout, AutoModelForImageTextToText for the others); the processor is loaded as in training
(radgrpo.models.processors.load_processor). Nothing here knows a family by name: a new family needs
no edit in export/.
"""

from __future__ import annotations

from typing import Any

from radgrpo.models.families.base import ModelFamily


def family_of_config(config: Any) -> ModelFamily:
    """The registered family of a Hugging Face config; a one-line ExportError for any other model."""
    from radgrpo.export.checkpoint import ExportError
    from radgrpo.models.families import FAMILIES, family_of_model_type, get_family

    model_type = str(getattr(config, "model_type", ""))
    family = family_of_model_type(model_type)
    if family is None:
        known = ", ".join(sorted(get_family(n).model_type for n in FAMILIES))
        raise ExportError(f"the checkpoint's model_type {model_type!r} is no registered model family "
                          f"(radgrpo.models.families; model types: {known})")
    return family


def auto_model_class(config: Any):
    """The transformers auto class the family loads its full model with."""
    import transformers

    return getattr(transformers, family_of_config(config).auto_class)


def load_processor(path: str, trust_remote_code: bool = False):
    """The processor (tokenizer, image processor, chat template) of the model the run started from, as
    training used it (radgrpo.models.processors.load_processor: the family's torchvision-free class,
    adjusted by the family). verl's checkpoint keeps a processor only for the families its
    `hf_processor` recognises, so the original model folder is the reliable source."""
    from radgrpo.models.processors import load_processor as load

    return load(path, trust_remote_code=trust_remote_code)
