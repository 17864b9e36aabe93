"""Multimodal processors that work without torchvision.

transformers 5.x builds Qwen2.5-VL's processor with a video processor, and every video processor
needs torchvision, whose wheels here link CUDA and fail to import. Constructing the stock processor
then fails and `AutoProcessor.from_pretrained` silently falls back to the bare tokenizer - verl would
train a "text-only" model and drop every image. These subclasses simply have no video processor:
their `__init__` lists every parameter explicitly, because `ProcessorMixin` reads the signature to
decide what to save and load.

The classes keep the stock class names on purpose: verl dispatches on
`processor.__class__.__name__` (e.g. to bind Qwen2.5-VL's `get_rope_index`), so a renamed subclass
would lose mrope position ids. `register_torchvision_free_processors` makes `AutoProcessor` return
them for their model configs and serves `import qwen_vl_utils` (verl's image loader, which imports
torchvision at module level) from radgrpo.models.qwen_vl_images. It is a no-op when torchvision
imports (GPU clusters), where the stock processors and qwen_vl_utils work.
"""

from __future__ import annotations

import importlib.util

from transformers.models.qwen2_5_vl import processing_qwen2_5_vl


class Qwen2_5_VLProcessor(processing_qwen2_5_vl.Qwen2_5_VLProcessor):  # noqa: N801 - name read by verl
    """Qwen2.5-VL processor for images only (no video processor, so no torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.video_processor = None
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                         chat_template=chat_template, **kwargs)

    @classmethod
    def get_attributes(cls):
        return ["image_processor", "tokenizer"]


# model_type -> processor class; a family added to radgrpo adds its entry here.
TORCHVISION_FREE_PROCESSORS = {"qwen2_5_vl": Qwen2_5_VLProcessor}


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

    by_name = {cls.__name__: cls for cls in TORCHVISION_FREE_PROCESSORS.values()}
    stock_lookup = getattr(processing_auto.processor_class_from_name, "__wrapped__",
                           processing_auto.processor_class_from_name)

    def processor_class_from_name(class_name: str):
        return by_name.get(class_name) or stock_lookup(class_name)

    processor_class_from_name.__wrapped__ = stock_lookup
    _install_qwen_vl_images()
    processing_auto.processor_class_from_name = processor_class_from_name
    for model_type, processor_cls in TORCHVISION_FREE_PROCESSORS.items():
        config_cls = type(AutoConfig.for_model(model_type))
        AutoProcessor.register(config_cls, processor_cls, exist_ok=True)


def _install_qwen_vl_images() -> None:
    """Serve `import qwen_vl_utils` (which verl uses to load images) from the torchvision-free copy."""
    import sys

    from radgrpo.models import qwen_vl_images

    sys.modules["qwen_vl_utils"] = qwen_vl_images
    sys.modules["qwen_vl_utils.vision_process"] = qwen_vl_images
