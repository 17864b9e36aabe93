"""Qwen2.5-VL: the family verl 0.9.1 was written for.

verl recognises its processor (and binds mrope's `get_rope_index`), re-encodes the actor's inputs
itself and concatenates its flattened patches across samples, so the hooks have nothing to do; what
is Qwen-specific is the torchvision-free processor, the vision special tokens, `mm_token_type_ids`
in generate, and the tiny model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from radgrpo.models.families.base import ModelFamily, defined_on_first_use


def _define_processor() -> type:
    """`Qwen2_5_VLProcessor` (defined on first use: see base.defined_on_first_use)."""
    from transformers.models.qwen2_5_vl import processing_qwen2_5_vl

    class Qwen2_5_VLProcessor(processing_qwen2_5_vl.Qwen2_5_VLProcessor):  # noqa: N801 - name read by verl
        """Qwen2.5-VL processor for images only (no video processor, so no torchvision).

        Keeps the stock class name: verl dispatches on it to bind mrope's `get_rope_index`.
        """

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.video_processor = None
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             chat_template=chat_template, **kwargs)

        @classmethod
        def get_attributes(cls):
            return ["image_processor", "tokenizer"]

    return Qwen2_5_VLProcessor


processor_class, __getattr__ = defined_on_first_use(__name__, "Qwen2_5_VLProcessor", _define_processor)


SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# The Qwen2-VL chat template (as shipped with Qwen2.5-VL): images become
# <|vision_start|><|image_pad|><|vision_end|>, which the processor expands to the patch count.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class Qwen2_5_VLFamily(ModelFamily):  # noqa: N801
    name = "qwen2_5_vl"
    model_type = "qwen2_5_vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    image_token = "<|image_pad|>"
    # a random tiny model emitting <|image_pad|> breaks get_rope_index on the actor side
    suppress_tokens = ("<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>", "<|vision_pad|>")
    end_of_turn = "<|im_end|>"
    verl_knows_processor = True
    vision_tower = ("transformers.models.qwen2_5_vl.modeling_qwen2_5_vl", "Qwen2_5_VisionTransformerPretrainedModel")
    vision_modules = ("model.visual",)  # the merger (projector) is inside
    vision_linear_samples = ("model.visual.blocks.0.attn.qkv", "model.visual.blocks.0.mlp.gate_proj",
                             "model.visual.merger.mlp.0")
    tiny_models = ("tiny_qwen2_5_vl",)

    def torchvision_free_processor(self) -> type:
        return processor_class()

    def rollout_inputs(self, processor, input_ids, images):
        inputs = self.image_inputs(processor, images)
        inputs["mm_token_type_ids"] = (input_ids == processor.image_token_id).long()
        return inputs

    def build_tiny(self, name: str, out: Path) -> None:
        from transformers import (GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration,
                                  Qwen2TokenizerFast)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        from radgrpo.models.tiny import train_tokenizer, warm_start_grounding

        torch.manual_seed(0)
        tokenizer = Qwen2TokenizerFast(tokenizer_object=train_tokenizer(SPECIAL_TOKENS), eos_token="<|im_end|>",
                                       pad_token="<|endoftext|>", unk_token=None, bos_token=None)
        tokenizer.chat_template = CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        config = Qwen2_5_VLConfig(
            text_config=dict(
                vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                tie_word_embeddings=False, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"],
            ),
            vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=14,
                               spatial_merge_size=2, temporal_patch_size=2, window_size=112, out_hidden_size=64,
                               fullatt_block_indexes=[1]),
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            tie_word_embeddings=False,
        )
        model = Qwen2_5_VLForConditionalGeneration(config)
        model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                                                   do_sample=True)
        image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14,
                                                   merge_size=2, temporal_patch_size=2)
        processor = processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                        chat_template=CHAT_TEMPLATE)
        warm_start_grounding(self, model, processor)
        model.save_pretrained(out)
        processor.save_pretrained(out)
