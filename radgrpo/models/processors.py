"""Multimodal processors that work without torchvision.

transformers 5.x builds Qwen2.5-VL's (and LLaVA-OneVision's) processor with a video processor, and
every video processor needs torchvision, whose wheels here link CUDA and fail to import.
Constructing the stock processor then fails and `AutoProcessor.from_pretrained` silently falls back to the bare tokenizer - verl would
train a "text-only" model and drop every image. Each family module (radgrpo.models.families) that
needs it defines a subclass without the video processor; its `__init__` lists every parameter
explicitly, because `ProcessorMixin` reads the signature to decide what to save and load.

The classes keep the stock class names on purpose: verl dispatches on
`processor.__class__.__name__` (e.g. to bind Qwen2.5-VL's `get_rope_index`), so a renamed subclass
would lose mrope position ids. `register_torchvision_free_processors` makes `AutoProcessor` return
them for their model configs and serves `import qwen_vl_utils` (verl's image loader, which imports
torchvision at module level) from radgrpo.models.qwen_vl_images. It is a no-op when torchvision
imports (GPU clusters), where the stock processors and qwen_vl_utils work.
"""

from __future__ import annotations

import importlib.util


def torchvision_free_processors() -> dict[str, type]:
    """model_type -> processor class, for every registered family that needs one."""
    from radgrpo.models.families import FAMILIES, get_family

    families = [get_family(name) for name in FAMILIES]
    classes = {f.model_type: f.torchvision_free_processor() for f in families}
    return {model_type: cls for model_type, cls in classes.items() if cls is not None}


def torchvision_available() -> bool:
    """True when torchvision is importable (checked without importing it: a broken wheel crashes)."""
    return importlib.util.find_spec("torchvision") is not None


def register_torchvision_free_processors() -> None:
    """Make AutoProcessor build the classes above, if torchvision is absent.

    Two routes lead AutoProcessor to a processor class: the `processor_class` name saved in a
    checkpoint's processor_config.json (every hub checkpoint has it) and the model-config mapping.
    Both are redirected, so real checkpoints load the same way as radgrpo's tiny ones.
    """
    if torchvision_available():
        return
    from transformers import AutoConfig, AutoProcessor
    from transformers.models.auto import processing_auto

    classes = torchvision_free_processors()
    by_name = {cls.__name__: cls for cls in classes.values()}
    stock_lookup = getattr(processing_auto.processor_class_from_name, "__wrapped__",
                           processing_auto.processor_class_from_name)

    def processor_class_from_name(class_name: str):
        return by_name.get(class_name) or stock_lookup(class_name)

    processor_class_from_name.__wrapped__ = stock_lookup
    serve_qwen_vl_utils()
    processing_auto.processor_class_from_name = processor_class_from_name
    for model_type, processor_cls in classes.items():
        config_cls = type(AutoConfig.for_model(model_type))
        AutoProcessor.register(config_cls, processor_cls, exist_ok=True)


def serve_qwen_vl_utils() -> None:
    """Serve `import qwen_vl_utils` (which verl uses to load images) from the torchvision-free copy."""
    import sys

    from radgrpo.models import qwen_vl_images

    sys.modules["qwen_vl_utils"] = qwen_vl_images
    sys.modules["qwen_vl_utils.vision_process"] = qwen_vl_images


def load_processor(path: str, *, trust_remote_code: bool = False):
    """The processor a model folder (or hub id) is trained with, outside verl: AutoProcessor with the
    torchvision-free classes registered, adjusted by the model's family as verl's processor hook adjusts
    it in training (radgrpo.engine.family_hooks; e.g. Gemma3: no second <bos>). A folder whose
    AutoProcessor is only a tokenizer (a text model) gives that tokenizer."""
    from transformers import AutoConfig, AutoProcessor

    from radgrpo.models.families import family_of_model_type

    register_torchvision_free_processors()
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    try:
        model_type = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type
    except OSError:  # a processor-only folder (radgrpo-prep's token_filter.processor may be one): no family
        model_type = ""
    family = family_of_model_type(model_type)
    if family is not None:
        family.prepare_processor(processor)
    return processor
