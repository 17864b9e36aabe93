"""Tiny random models of the real architecture classes, built offline.

Nothing can be downloaded from the Hugging Face hub here, yet the embedded default and the tests must
exercise the exact code paths of the real models (Qwen2.5-VL's mrope and vision tower, its processor
and chat template). So `ensure_tiny_model` builds a few-hundred-thousand-parameter model of the SAME
classes with random weights and a byte-level BPE tokenizer trained locally, saves it like any hub
checkpoint and caches it. Recipes follow ../shared/notes/tiny-models.md.

The cache folder is `$RADGRPO_CACHE/tiny_models/<name>` (default `~/.cache/radgrpo`); building is
deterministic (fixed seeds), takes a few seconds, and is written atomically so that concurrent
builders (several SLURM tasks on one file system) never see a half-written model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from radgrpo.models.processors import TORCHVISION_FREE_PROCESSORS

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# The Qwen2-VL chat template (as shipped with Qwen2.5-VL): images become
# <|vision_start|><|image_pad|><|vision_end|>, which the processor expands to the patch count.
QWEN2_VL_CHAT_TEMPLATE = (
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

# A small radiology-flavoured corpus so the BPE merges look like the task's words.
_CORPUS = [
    "The lungs are clear. No pleural effusion or pneumothorax. Heart size is normal.",
    "Right lower lobe opacity concerning for pneumonia. Small left pleural effusion.",
    "Cardiomegaly with mild pulmonary edema. Atelectasis at the left base.",
    "<think>I look at the image for bright regions.</think><answer>[0.12, 0.30, 0.45, 0.62]</answer>",
    "Locate the nodule. Answer with boxes [x1, y1, x2, y2] normalised to 0-1. No finding.",
    "Question: Which abnormality is present? Options: A. Pneumonia B. Effusion C. Nodule D. None",
]


def cache_root() -> Path:
    """Where radgrpo caches built artefacts; `RADGRPO_CACHE` overrides `~/.cache/radgrpo`."""
    return Path(os.environ.get("RADGRPO_CACHE", Path.home() / ".cache" / "radgrpo")).expanduser()


TINY_BUILDERS = {}
# Supervised steps of the grounding-format cold start (see _warm_start_grounding); ~0.1 s each.
WARM_START_STEPS = 300
# the prompt style (conf/prompt) of the warm start: the one the default synthetic data is rendered with
WARM_START_PROMPT = "think"


def _builder(name):
    def register(fn):
        TINY_BUILDERS[name] = fn
        return fn

    return register


def ensure_tiny_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder of tiny model `name`, building it on first use."""
    if name not in TINY_BUILDERS:
        raise ValueError(f"unknown tiny model {name!r}; known: {', '.join(sorted(TINY_BUILDERS))}")
    root = Path(cache_dir) if cache_dir else cache_root() / "tiny_models"
    target = root / name
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        TINY_BUILDERS[name](staging)
        try:
            staging.rename(target)
        except OSError:  # another process published it first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _box_corpus(count: int = 400) -> list[str]:
    """Answers in the grounding format, so numbers like '0.37, ' become single tokens."""
    import random

    rng = random.Random(0)
    return [format_grounding_answer([[round(rng.random(), 2) for _ in range(4)]]) for _ in range(count)]


def format_grounding_answer(boxes: list[list[float]]) -> str:
    """The answer string the warm start teaches: boxes with two decimals, or 'no finding'."""
    if not boxes:
        return "<answer>no finding</answer>"
    return "<answer>" + ", ".join("[" + ", ".join(f"{v:.2f}" for v in box) + "]" for box in boxes) + "</answer>"


def _train_tokenizer(special_tokens: list[str], vocab_size: int = 1024):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20 + _box_corpus(), trainer=trainer)
    return tokenizer


@_builder("tiny_qwen2_5_vl")
def _build_tiny_qwen2_5_vl(out: Path) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2TokenizerFast,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(0)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=_train_tokenizer(QWEN_SPECIAL_TOKENS),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            tie_word_embeddings=False,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            out_hidden_size=64,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], do_sample=True
    )
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = TORCHVISION_FREE_PROCESSORS["qwen2_5_vl"](
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE
    )
    _warm_start_grounding(model, processor)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _warm_start_grounding(model, processor, steps: int = WARM_START_STEPS, seed: int = 0) -> None:
    """A few supervised steps teaching the answer *format* of the grounding task.

    A purely random policy never writes a parseable box, so every rollout scores 0, GRPO's
    group-normalised advantages are all 0 and no gradient flows - the embedded default would prove
    nothing. After this cold start (what RadVLM-GRPO and the seeds do with SFT, in miniature) the
    model writes `<answer>[x1, y1, x2, y2]</answer>` with poorly placed boxes, so rewards vary within
    a group and the GRPO update is real. Localisation itself is left for RL to learn.
    """
    import numpy as np
    import torch
    from PIL import Image

    from radgrpo.data.prompts import chat_content, load_prompt
    from radgrpo.data.synthetic import QUESTION, draw_chest

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    messages = chat_content(load_prompt(WARM_START_PROMPT).render(QUESTION, "grounding", 1))
    model.train()
    for _ in range(steps):
        n_lesions = 0 if rng.random() < 0.2 else int(rng.integers(1, 3))
        pixels, boxes = draw_chest(rng, 112, n_lesions)
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        target = format_grounding_answer(boxes) + "<|im_end|>"
        image = Image.fromarray(pixels, mode="L").convert("RGB")
        batch = processor(text=[prompt + target], images=[image], return_tensors="pt")
        prompt_len = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
        labels = batch["input_ids"].clone()
        labels[:, :prompt_len] = -100
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
