"""The export's proof: the folder, loaded with plain transformers, gives the trained actor's logits.

One input - a chat-template prompt with one image, built by the exported processor - goes through the
rebuilt actor (float32, LoRA unmerged as in training) and through the exported folder loaded the way a
user would load it (Auto class + AutoProcessor, plus peft for an adapter export).
"""

from __future__ import annotations

from pathlib import Path

import torch

PROMPT = "Describe the findings in this chest X-ray."


def probe_image(size: int = 112):
    """A deterministic grey-level gradient image (no file needed)."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, size, dtype=np.float32)
    pixels = ((ramp[None, :] + ramp[:, None]) / 2).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def probe_inputs(processor, image=None) -> dict:
    """Processor inputs for one user turn holding an image and a question, ready for generation."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return dict(processor(text=[text], images=[image or probe_image()], return_tensors="pt"))


def logits(model, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits.float()


def load_exported(folder: Path, adapter: bool):
    """The exported model as a user loads it, in float32."""
    from transformers import AutoConfig

    from radgrpo.export.family import auto_model_class

    config = AutoConfig.from_pretrained(folder)
    model = auto_model_class(config).from_pretrained(folder, dtype=torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, folder / "adapter")
    return model.eval()


def gap_to(reference: torch.Tensor, folder: Path, adapter: bool) -> float:
    """Largest |logit difference| between `reference` (the actor's) and the exported folder, whose own
    saved processor builds the probe input."""
    from radgrpo.export.checkpoint import ExportError
    from radgrpo.export.family import load_processor

    exported = logits(load_exported(folder, adapter), probe_inputs(load_processor(str(folder))))
    if exported.shape != reference.shape:
        raise ExportError(f"the exported processor builds a different input: logits {tuple(exported.shape)} "
                          f"vs the actor's {tuple(reference.shape)}")
    return float((reference - exported).abs().max())
