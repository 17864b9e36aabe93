"""radgrpo-eval and radgrpo-difficulty generate with every model family, not only the one verl knows:
verl's own `hf_processor` returns None for Gemma3, LLaVA-OneVision and Phi-4-multimodal processors, so
radgrpo.generation loads them itself (radgrpo.models.processors.load_processor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding
from radgrpo.generation import GenerationSettings, HFGenerator, load_rows
from radgrpo.models.families import get_family
from radgrpo.models.tiny import ensure_tiny_model


@pytest.mark.integration
@pytest.mark.parametrize("tiny, family, processor_class", [
    ("tiny_medgemma", "gemma3", "Gemma3Processor"),
    ("tiny_llava_onevision", "llava_onevision", "LlavaOnevisionProcessor"),
    ("tiny_phi4_multimodal", "phi4_multimodal", "Phi4MultimodalProcessor"),
])
def test_generator_loads_the_family_processor_and_generates_from_the_image(tiny, family, processor_class):
    cache = Path(os.environ["RADGRPO_CACHE"])
    model = ensure_tiny_model(tiny, cache / "tiny_models")
    folder = generate_synthetic_grounding(SyntheticGroundingSpec(num_train=2, num_val=1), cache / "data")
    (row, *_) = load_rows(sorted(str(p) for p in (folder / "train").glob("*.parquet")))
    generator = HFGenerator(str(model))
    assert type(generator.processor).__name__ == processor_class
    inputs = generator.model_inputs(row)
    image_token = get_family(family).image_token_id(generator.tokenizer)
    assert int((inputs["input_ids"] == image_token).sum()) > 0  # the image reached the prompt
    (text,) = generator.generate_row(row, GenerationSettings(k=1, temperature=0.0, max_new_tokens=8))
    assert isinstance(text, str)
