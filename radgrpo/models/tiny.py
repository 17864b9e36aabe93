"""Tiny random models of the real architecture classes, built offline.

Nothing can be downloaded from the Hugging Face hub here, yet the embedded default and the tests must
exercise the exact code paths of the real models (vision tower, processor, chat template, rope). So
`ensure_tiny_model` has the model's family (radgrpo.models.families) build a few-hundred-thousand-
parameter model of the SAME classes with random weights and a BPE tokenizer trained locally, save it
like any hub checkpoint, and cache it. Recipes follow ../shared/notes/tiny-models.md.

The cache folder is `$RADGRPO_CACHE/tiny_models/<name>-<build fingerprint>` (default
`~/.cache/radgrpo`): the fingerprint hashes what the build reads (`build_inputs`), so a model built
before a builder change is never reused after it. Building is deterministic (fixed seeds), takes a
few seconds, and is written atomically so that concurrent builders (several SLURM tasks on one file
system) never see a half-written model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

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


# Supervised steps of the grounding-format cold start (see warm_start_grounding); ~0.1 s each.
WARM_START_STEPS = 300
# the prompt style (conf/prompt) of the warm start: the one the default synthetic data is rendered with
WARM_START_PROMPT = "think"


def build_inputs() -> list[Path]:
    """The files a tiny model's build reads: radgrpo.models (families, processors, this module), the
    warm start's prompt and synthetic images (radgrpo.data.prompts, .synthetic, its conf/prompt file)."""
    from radgrpo.data import prompts, synthetic

    models = Path(__file__).resolve().parent
    return [*sorted(models.rglob("*.py")), Path(prompts.__file__), Path(synthetic.__file__),
            prompts.PROMPT_DIR / f"{WARM_START_PROMPT}.yaml"]


def build_fingerprint() -> str:
    """12 hex digits of the hash of `build_inputs` and the torch and transformers versions that build
    and save the model (read from the installed metadata: importing transformers costs ~0.6 s)."""
    digest = hashlib.sha256(f"torch {version('torch')} transformers {version('transformers')}".encode())
    for path in build_inputs():
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_tiny_model(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the folder of tiny model `name` as the current code builds it, building it on first use."""
    from radgrpo.models.families import family_of_tiny

    family = family_of_tiny(name)
    root = Path(cache_dir) if cache_dir else cache_root() / "tiny_models"
    target = root / f"{name}-{build_fingerprint()}"
    if (target / "config.json").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        family.build_tiny(name, staging)
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


def train_tokenizer(special_tokens: list[str], vocab_size: int = 1024):
    """A byte-level BPE (GPT-2 / Qwen style) trained on the corpus, with `special_tokens` first."""
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


def train_sentencepiece_bpe(special_tokens: list[str], vocab_size: int = 1024) -> tuple[dict[str, int], list]:
    """Vocab and merges of a SentencePiece-style BPE (Gemma / Llama style: spaces as '▁', byte
    fallback to <0xNN> tokens), for tokenizer classes that build their own pipeline from them."""
    import json

    from tokenizers import Tokenizer, models, normalizers, trainers

    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
    tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + len(byte_tokens), special_tokens=special_tokens + byte_tokens,
                                  show_progress=False)
    tokenizer.train_from_iterator(_CORPUS * 20 + _box_corpus(), trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    return model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def warm_start_grounding(family, model, processor, steps: int = WARM_START_STEPS, seed: int = 0) -> None:
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
        target = format_grounding_answer(boxes) + family.end_of_turn
        image = Image.fromarray(pixels, mode="L").convert("RGB")
        batch, prompt_len = family.warm_start_batch(processor, prompt, target, image)
        labels = batch["input_ids"].clone()
        labels[:, :prompt_len] = -100
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
