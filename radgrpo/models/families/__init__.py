"""Model families: one module per family, one line per family in FAMILIES.

`model.family` (conf/model/*.yaml) names the family; radgrpo's engine forwards it to every Ray process
as RADGRPO_MODEL_FAMILY, where the verl plugin's hooks, the hf rollout and the vision trace read it
through `active_family()`. Adding a family = its module here, its conf/model yaml files, and its line
below.
"""

from __future__ import annotations

import functools
import importlib
import os

from radgrpo.models.families.base import ModelFamily

ENV = "RADGRPO_MODEL_FAMILY"

FAMILIES = {
    "qwen2_5_vl": "radgrpo.models.families.qwen2_5_vl:Qwen2_5_VLFamily",
    "gemma3": "radgrpo.models.families.gemma3:Gemma3Family",
    "llava_onevision": "radgrpo.models.families.llava_onevision:LlavaOnevisionFamily",
    "phi4_multimodal": "radgrpo.models.families.phi4_multimodal:Phi4MultimodalFamily",
}


class UnknownFamily(ValueError):
    pass


@functools.lru_cache(maxsize=None)
def get_family(name: str) -> ModelFamily:
    """The family registered as `name`; UnknownFamily (one line) otherwise."""
    if name not in FAMILIES:
        raise UnknownFamily(f"model.family '{name}' is unknown; known: {', '.join(sorted(FAMILIES))}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def active_family() -> ModelFamily | None:
    """The family of this run (RADGRPO_MODEL_FAMILY), or None outside a radgrpo run."""
    name = os.environ.get(ENV, "").strip()
    return get_family(name) if name else None


def family_of_model_type(model_type: str) -> ModelFamily | None:
    """The registered family whose checkpoints have `model_type`, if any."""
    return next((get_family(n) for n in FAMILIES if get_family(n).model_type == model_type), None)


def family_of_tiny(tiny_name: str) -> ModelFamily:
    """The family that builds tiny model `tiny_name`."""
    for name in FAMILIES:
        family = get_family(name)
        if tiny_name in family.tiny_models:
            return family
    known = sorted(t for n in FAMILIES for t in get_family(n).tiny_models)
    raise ValueError(f"unknown tiny model {tiny_name!r}; known: {', '.join(known)}")
