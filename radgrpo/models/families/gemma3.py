"""Gemma3 (MedGemma): `Gemma3ForConditionalGeneration` with a SigLIP tower and a fixed 2-D pooled
image-token count per image (256 for MedGemma 4B).

What verl 0.9.1 gets wrong for it (model-families.md) and what this family does instead:
- verl does not know `Gemma3Processor` (processor -> None, dataset refuses images): the processor
  hook loads it; `add_bos_token=False`, because the chat template already starts with `<bos>` and
  verl's generic prompt builder would otherwise give every prompt two;
- verl re-encodes the actor's inputs from decoded text, which drops the special `<start_of_image>`
  and fails ("Prompt contained 0 image tokens"): the actor's inputs come from the image processor;
- image tokens attend to each other bidirectionally, signalled by `token_type_ids` that verl never
  passes: the model's forward derives them from `input_ids` when pixels are given (what the
  processor would have produced), so actor and rollout compute the same attention.
The image processor resizes every image to one square (no pan-and-scan), so images of any aspect
ratio give the same tensor shapes and batches merge as they are.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from radgrpo.models.families.base import ModelFamily

BOI, EOI, IMAGE = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", BOI, EOI, IMAGE]

# Gemma3's chat template reduced to what radgrpo's prompts use (roles, text, images): the assistant
# role is "model", an image is <start_of_image> (the processor expands it), turns end <end_of_turn>.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] | trim }}"
    "{% endif %}{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _with_token_type_ids(forward):
    @functools.wraps(forward)
    def wrapper(self, input_ids=None, *args, pixel_values=None, token_type_ids=None, **kwargs):
        if token_type_ids is None and pixel_values is not None and input_ids is not None:
            token_type_ids = (input_ids == self.config.image_token_id).long()
        return forward(self, input_ids, *args, pixel_values=pixel_values, token_type_ids=token_type_ids, **kwargs)

    wrapper._radgrpo_token_type_ids = True
    return wrapper


class Gemma3Family(ModelFamily):
    name = "gemma3"
    model_type = "gemma3"
    model_class = "Gemma3ForConditionalGeneration"
    image_token = IMAGE
    suppress_tokens = (BOI, EOI, IMAGE)
    end_of_turn = "<end_of_turn>"
    vision_tower = ("transformers.models.siglip.modeling_siglip", "SiglipVisionModel")
    vision_modules = ("model.vision_tower", "model.multi_modal_projector")
    # (the projector is a bare parameter, mm_input_projection_weight: no linear layer to adapt)
    vision_linear_samples = ("model.vision_tower.encoder.layers.0.self_attn.q_proj",
                             "model.vision_tower.encoder.layers.0.self_attn.out_proj",
                             "model.vision_tower.encoder.layers.0.mlp.fc1")
    tiny_models = ("tiny_medgemma",)

    def prepare_processor(self, processor) -> None:
        processor.tokenizer.add_bos_token = False

    def rollout_inputs(self, processor, input_ids, images):
        inputs = self.image_inputs(processor, images)
        inputs.pop("num_crops", None)
        inputs["token_type_ids"] = (input_ids == self.image_token_id(processor.tokenizer)).long()
        return inputs

    def actor_inputs(self, processor, input_ids, images):
        inputs = self.image_inputs(processor, images)
        inputs.pop("num_crops", None)
        return inputs

    def patch_model_classes(self) -> None:
        from transformers.models.gemma3 import modeling_gemma3

        cls = modeling_gemma3.Gemma3ForConditionalGeneration
        if not getattr(cls.forward, "_radgrpo_token_type_ids", False):
            cls.forward = _with_token_type_ids(cls.forward)

    def build_tiny(self, name: str, out: Path) -> None:
        from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor, GemmaTokenizer,
                                  GenerationConfig)
        from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

        from radgrpo.models.tiny import WARM_START_STEPS, train_sentencepiece_bpe, warm_start_grounding

        torch.manual_seed(0)
        vocab, merges = train_sentencepiece_bpe(SPECIAL_TOKENS)
        tokenizer = GemmaTokenizer(
            vocab=vocab, merges=merges, bos_token="<bos>", eos_token="<eos>",
            pad_token="<pad>", unk_token="<unk>",
            extra_special_tokens={"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE},
        )
        tokenizer.add_tokens(SPECIAL_TOKENS, special_tokens=True)  # the class rebuilds its pipeline: re-register
        tokenizer.chat_template = CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        config = Gemma3Config(
            text_config=dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
                             sliding_window=64, bos_token_id=ids["<bos>"], eos_token_id=ids["<end_of_turn>"],
                             pad_token_id=ids["<pad>"]),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                               image_size=56, patch_size=14),
            mm_tokens_per_image=4, boi_token_index=ids[BOI], eoi_token_index=ids[EOI], image_token_index=ids[IMAGE],
        )
        model = Gemma3ForConditionalGeneration(config)
        model.generation_config = GenerationConfig(bos_token_id=ids["<bos>"], eos_token_id=ids["<end_of_turn>"],
                                                   pad_token_id=ids["<pad>"], do_sample=True)
        image_processor = Gemma3ImageProcessorPil(size={"height": 56, "width": 56}, do_pan_and_scan=False)
        processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE,
                                    image_seq_length=4)
        self.prepare_processor(processor)
        # twice the default: with the think prompt (226 tokens) 300 steps left its answers malformed
        # (every reward 0 in a 2-step run); 600 give parseable boxes and varying rewards
        warm_start_grounding(self, model, processor, steps=2 * WARM_START_STEPS)
        model.save_pretrained(out)
        processor.save_pretrained(out)
