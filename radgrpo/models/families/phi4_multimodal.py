"""Phi-4-multimodal in transformers' native layout (`Phi4MultimodalForCausalLM`, model_type
`phi4_multimodal`): a SigLIP-style tower over 448 px crops (an image = one global view + a grid of
crops chosen by its aspect ratio, 256 + 1 + crop tokens + row separators + 16 image tokens), an
audio tower (unused here, cannot be removed), and a Phi-3-style language model loaded with
`AutoModelForCausalLM`.

- The stock image processor exists only as a torchvision backend; `Phi4MultimodalImageProcessorPil`
  below is the same algorithm with torch/PIL operations (torchvision's tensor resize is
  `torch.nn.functional.interpolate` with the same modes, uint8 rounding kept).
- verl does not know the processor; its re-encoding of the actor's inputs decodes with
  `skip_special_tokens=True`, which drops `<|image|>` and fails the processor's count check: the
  actor's inputs come from the image processor (`image_pixel_values`, `image_sizes`,
  `image_attention_mask`).
- The crop count varies with the aspect ratio: pixel values are zero-padded and the crop masks
  one-padded along dim 1, as the image processor itself pads within one call.
- transformers' vision attention (`Phi4MultimodalVisionAttention`) sets `is_causal = True`, which
  sdpa (and flash attention) honour whenever the tower's patch mask is None - i.e. when no image of
  the batch has a padded crop: the tower then attends causally, and bidirectionally in a batch where
  some image is padded (eager is always bidirectional). An image's features, and every log-prob after
  them, depended on which other images shared its batch: the hf rollout's generation batch and the
  actor's micro-batch differ, so rollout and actor log-probs differed by up to 0.2 at a token.
  A SigLIP tower is bidirectional (transformers' own eager path attends so; onnxruntime PR #25360
  removed the same causal mask from Phi-4-MM's SigLIP as an accuracy bug); `patch_model_classes`
  builds every tower afterwards with `is_causal = False`.
- vLLM serves only the remote-code `Phi4MMForCausalLM` layout, not this one: on GPUs this family
  trains with the hf rollout (see conf/model/phi4_multimodal.yaml and the README).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling
from transformers.models.phi4_multimodal import processing_phi4_multimodal

from radgrpo.models.families.base import ModelFamily

CROP = 448


class Phi4MultimodalImageProcessorPil(PilBackend):
    """Phi-4-multimodal's dynamic-HD image processor without torchvision (same outputs)."""

    resample = PILImageResampling.BICUBIC
    size = {"height": CROP, "width": CROP}
    patch_size = 14
    dynamic_hd = 36
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    model_input_names = ["image_pixel_values", "image_sizes", "image_attention_mask"]

    def __init__(self, patch_size: int = 14, dynamic_hd: int = 36, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.dynamic_hd = dynamic_hd

    def to_dict(self):
        out = super().to_dict()
        out["image_processor_type"] = type(self).__name__  # reload as this class, never the torchvision one
        return out

    @staticmethod
    def _grid(width: int, height: int, crop: int, max_num: int) -> tuple[int, int]:
        """(crops across, crops down), as the stock dynamic_preprocess chooses them."""
        w_num, h_num = math.ceil(width / crop), math.ceil(height / crop)
        if w_num * h_num <= max_num:
            return w_num, h_num
        ratios = sorted({(i, j) for n in range(1, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                         if 1 <= i * j <= max_num}, key=lambda r: r[0] * r[1])
        aspect, best, best_diff = width / height, (1, 1), float("inf")
        for ratio in ratios:
            diff = abs(aspect - ratio[0] / ratio[1])
            if diff < best_diff:
                best_diff, best = diff, ratio
            elif diff == best_diff and width * height > 0.5 * crop * crop * ratio[0] * ratio[1]:
                best = ratio
        return best

    def _one(self, image: torch.Tensor, crop: int, patch: int, mean, std):
        mask_size = crop // patch
        height, width = image.shape[-2:]
        w_num, h_num = self._grid(width, height, crop, self.dynamic_hd)
        target_w, target_h = crop * w_num, crop * h_num
        if target_w / width < target_h / height:
            new_w, new_h = target_w, int(height * target_w / width)
        else:
            new_w, new_h = int(width * target_h / height), target_h
        pad_w, pad_h = target_w - new_w, target_h - new_h
        mask = torch.ones(mask_size * h_num, mask_size * w_num)
        if pad_w >= patch:
            mask[:, -math.floor(pad_w / patch):] = 0
        if pad_h >= patch:
            mask[-math.floor(pad_h / patch):, :] = 0
        resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", align_corners=False,
                                antialias=True).round().clamp(0, 255)[0]
        padded = F.pad(resized, (0, pad_w, 0, pad_h), value=255.0)
        pixels = (padded / 255.0 - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        global_view = F.interpolate(pixels[None], size=(crop, crop), mode="bicubic", align_corners=False)[0]
        crops = pixels.reshape(3, h_num, crop, w_num, crop).permute(1, 3, 0, 2, 4).reshape(-1, 3, crop, crop)
        crop_masks = mask.reshape(h_num, mask_size, w_num, mask_size).transpose(1, 2).reshape(-1, mask_size, mask_size)
        down = crop_masks[:, 0::2, 0::2].reshape(h_num, w_num, mask_size // 2 + mask_size % 2,
                                                 mask_size // 2 + mask_size % 2)
        down = down.transpose(1, 2).reshape(down.size(0) * down.size(2), down.size(1) * down.size(3))
        tokens = 256 + 1 + int(down.sum()) + int(down[:, 0].sum()) + 16
        views = torch.cat([global_view[None], crops])
        masks = torch.cat([torch.ones(1, mask_size, mask_size), crop_masks])
        return views, masks, tokens, [target_h, target_w]

    def _preprocess(self, images: list[np.ndarray], size, image_mean, image_std, return_tensors=None, **kwargs):
        if size.height != size.width:
            raise ValueError("Phi-4-multimodal's image processor takes square crop sizes only")
        patch = int(kwargs.get("patch_size") or self.patch_size)
        views, masks, tokens, sizes = zip(*(self._one(torch.from_numpy(np.ascontiguousarray(im)), size.height, patch,
                                                      image_mean, image_std) for im in images))
        most = max(v.shape[0] for v in views)
        views = torch.stack([torch.cat([v, v.new_zeros(most - v.shape[0], *v.shape[1:])]) for v in views])
        masks = torch.stack([torch.cat([m, m.new_ones(most - m.shape[0], *m.shape[1:])]) for m in masks])
        return BatchFeature(data={"image_pixel_values": views, "image_sizes": torch.tensor(sizes, dtype=torch.long),
                                  "image_attention_mask": masks, "num_img_tokens": list(tokens)},
                            tensor_type=return_tensors)


class Phi4MultimodalProcessor(processing_phi4_multimodal.Phi4MultimodalProcessor):
    """The stock processor, loading its image processor as the torchvision-free class above.

    `chat_template` is in the signature because ProcessorMixin reads it to decide what to reload.
    """

    def __init__(self, image_processor, audio_processor, tokenizer, chat_template=None, **kwargs):
        super().__init__(image_processor, audio_processor, tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        from transformers import AutoFeatureExtractor, AutoTokenizer
        from transformers.image_processing_utils import ImageProcessingMixin

        image_dict, _ = ImageProcessingMixin.get_image_processor_dict(pretrained_model_name_or_path, **kwargs)
        image_dict = {k: v for k, v in image_dict.items() if k not in ("image_processor_type", "processor_class")}
        return [Phi4MultimodalImageProcessorPil(**image_dict),
                AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **kwargs),
                AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)]


def _bidirectional(init):
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.is_causal = False

    __init__._radgrpo_bidirectional = True
    return __init__


SPECIAL_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|image|>", "<|audio|>"]

# Phi-4-multimodal's chat format (<|user|>...<|end|><|assistant|>), images as <|image|> placeholders
# that the native processor expands.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<|image|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class Phi4MultimodalFamily(ModelFamily):
    name = "phi4_multimodal"
    model_type = "phi4_multimodal"
    model_class = "Phi4MultimodalForCausalLM"
    auto_class = "AutoModelForCausalLM"
    image_token = "<|image|>"
    suppress_tokens = ("<|image|>", "<|audio|>")
    end_of_turn = "<|end|>"
    vision_tower = ("transformers.models.phi4_multimodal.modeling_phi4_multimodal", "Phi4MultimodalVisionModel")
    padded_keys = {"image_pixel_values": 0.0, "image_attention_mask": 1.0}
    # the tower (img_processor) with its projection (img_projection_up/down) and separators; the audio
    # tower beside it is never fed
    vision_modules = ("model.embed_tokens_extend.image_embed",)
    unfed_modules = ("model.embed_tokens_extend.audio_embed",)
    vision_linear_samples = ("model.embed_tokens_extend.image_embed.img_processor.encoder.layers.0.self_attn.q_proj",
                             "model.embed_tokens_extend.image_embed.img_processor.encoder.layers.0.mlp.fc1",
                             "model.embed_tokens_extend.image_embed.img_projection_up")
    tiny_models = ("tiny_phi4_multimodal",)

    def torchvision_free_processor(self) -> type:
        return Phi4MultimodalProcessor
    vllm_serves = False

    def patch_model_classes(self) -> None:
        """Vision attention bidirectional whatever the batch (see the module docstring)."""
        from transformers.models.phi4_multimodal import modeling_phi4_multimodal

        attention = modeling_phi4_multimodal.Phi4MultimodalVisionAttention
        if not getattr(attention.__init__, "_radgrpo_bidirectional", False):
            attention.__init__ = _bidirectional(attention.__init__)

    def image_inputs(self, processor, images):
        inputs = dict(processor.image_processor(images=images, return_tensors="pt"))
        inputs.pop("num_img_tokens", None)
        return inputs

    def actor_inputs(self, processor, input_ids, images):
        return self.image_inputs(processor, images)

    def config_image_token_id(self, config) -> int:
        return int(config.vision_config.image_token_id)

    def build_tiny(self, name: str, out: Path) -> None:
        from radgrpo.models.tiny import warm_start_grounding

        model, processor = self.tiny_parts()
        warm_start_grounding(self, model, processor)
        model.save_pretrained(out)
        processor.save_pretrained(out)

    def tiny_parts(self):
        """The tiny model (random weights) and its processor, before the warm start."""
        from transformers import GenerationConfig, GPT2TokenizerFast, Phi4MultimodalConfig, Phi4MultimodalForCausalLM
        from transformers.models.phi4_multimodal.feature_extraction_phi4_multimodal import (
            Phi4MultimodalFeatureExtractor,
        )

        from radgrpo.models.tiny import train_tokenizer

        self.patch_model_classes()  # the warm start trains the tower as runs compute it
        torch.manual_seed(0)
        tokenizer = GPT2TokenizerFast(tokenizer_object=train_tokenizer(SPECIAL_TOKENS), bos_token="<|endoftext|>",
                                      eos_token="<|end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                                      extra_special_tokens={"image_token": "<|image|>", "audio_token": "<|audio|>"})
        tokenizer.chat_template = CHAT_TEMPLATE
        ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        config = Phi4MultimodalConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
            original_max_position_embeddings=4096, bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|end|>"],
            pad_token_id=ids["<|endoftext|>"],
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                               image_size=CROP, patch_size=14, crop_size=CROP, image_token_id=ids["<|image|>"]),
            audio_config=dict(hidden_size=16, intermediate_size=32, num_blocks=1, num_attention_heads=2,
                              ext_pw_out_channel=16, depthwise_separable_out_channel=16, nemo_conv_channels=16,
                              audio_token_id=ids["<|audio|>"]),
        )
        model = Phi4MultimodalForCausalLM(config)
        model.generation_config = GenerationConfig(eos_token_id=ids["<|end|>"], pad_token_id=ids["<|endoftext|>"],
                                                   do_sample=True)
        processor = Phi4MultimodalProcessor(image_processor=Phi4MultimodalImageProcessorPil(),
                                            audio_processor=Phi4MultimodalFeatureExtractor(), tokenizer=tokenizer,
                                            chat_template=CHAT_TEMPLATE)
        return model, processor
