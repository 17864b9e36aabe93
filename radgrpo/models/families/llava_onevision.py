"""LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`: SigLIP tower + Qwen2 language model).

Its anyres image processing cuts an image into a base view plus grid patches chosen by the aspect
ratio, so `pixel_values` is (images, patches, 3, H, W) with a patch count that varies between
images: samples of different aspect ratios cannot be concatenated as verl does, and are zero-padded
along the patch dimension (the model reads the real count from `image_sizes`; padding changes the
result by < 1e-7, model-families.md). The stock processor needs a video processor, hence
torchvision; the subclass below has none. verl does not know the processor class: the processor
hook loads it (verl's own re-encoding of the actor's inputs works for this family).
"""

from __future__ import annotations

from pathlib import Path

import torch

from radgrpo.models.families.base import ModelFamily, defined_on_first_use


def _define_processor() -> type:
    """`LlavaOnevisionProcessor` (defined on first use: see base.defined_on_first_use)."""
    from transformers.models.llava_onevision import processing_llava_onevision

    class LlavaOnevisionProcessor(processing_llava_onevision.LlavaOnevisionProcessor):
        """LLaVA-OneVision processor for images only (no video processor, so no torchvision).

        Every parameter is listed: ProcessorMixin reads the signature to save and reload them.
        """

        def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                     vision_feature_select_strategy=None, chat_template=None, image_token="<image>",
                     video_token="<video>", vision_aspect_ratio="anyres_max_9", **kwargs):
            self.video_processor = None
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             num_image_tokens=num_image_tokens,
                             vision_feature_select_strategy=vision_feature_select_strategy,
                             chat_template=chat_template, image_token=image_token, video_token=video_token,
                             vision_aspect_ratio=vision_aspect_ratio, **kwargs)

        @classmethod
        def get_attributes(cls):
            return ["image_processor", "tokenizer"]

    return LlavaOnevisionProcessor


processor_class, __getattr__ = defined_on_first_use(__name__, "LlavaOnevisionProcessor", _define_processor)


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]

# llava-onevision-qwen2's chat template without the generation tags: images first, then text.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ '\n' + message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class LlavaOnevisionFamily(ModelFamily):
    name = "llava_onevision"
    model_type = "llava_onevision"
    model_class = "LlavaOnevisionForConditionalGeneration"
    image_token = "<image>"
    suppress_tokens = ("<image>", "<video>")
    end_of_turn = "<|im_end|>"
    vision_tower = ("transformers.models.siglip.modeling_siglip", "SiglipVisionModel")
    padded_keys = {"pixel_values": 0.0}
    vision_modules = ("model.vision_tower", "model.multi_modal_projector")
    vision_linear_samples = ("model.vision_tower.encoder.layers.0.self_attn.q_proj",
                             "model.vision_tower.encoder.layers.0.mlp.fc1", "model.multi_modal_projector.linear_1")
    tiny_models = ("tiny_llava_onevision",)

    def torchvision_free_processor(self) -> type:
        return processor_class()

    def build_tiny(self, name: str, out: Path) -> None:
        from transformers import (GenerationConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                                  Qwen2TokenizerFast)
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil,
        )

        from radgrpo.models.tiny import train_tokenizer, warm_start_grounding

        torch.manual_seed(0)
        tokenizer = Qwen2TokenizerFast(tokenizer_object=train_tokenizer(SPECIAL_TOKENS), eos_token="<|im_end|>",
                                       pad_token="<|endoftext|>", unk_token=None, bos_token=None)
        tokenizer.chat_template = CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        pinpoints = [[56, 56], [56, 112], [112, 56], [112, 112]]
        config = LlavaOnevisionConfig(
            text_config=dict(model_type="qwen2", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=4096, tie_word_embeddings=False,
                             bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                             pad_token_id=ids["<|endoftext|>"]),
            vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                               num_hidden_layers=1, num_attention_heads=2, image_size=56, patch_size=14),
            image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=pinpoints,
            vision_feature_select_strategy="full", vision_feature_layer=-1, tie_word_embeddings=False,
        )
        model = LlavaOnevisionForConditionalGeneration(config)
        model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                                                   do_sample=True)
        image_processor = LlavaOnevisionImageProcessorPil(size={"height": 56, "width": 56},
                                                          crop_size={"height": 56, "width": 56},
                                                          image_grid_pinpoints=pinpoints)
        processor = processor_class()(image_processor=image_processor, tokenizer=tokenizer, num_image_tokens=16,
                                            vision_feature_select_strategy="full", chat_template=CHAT_TEMPLATE)
        warm_start_grounding(self, model, processor)
        model.save_pretrained(out)
        processor.save_pretrained(out)
