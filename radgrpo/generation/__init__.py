"""Offline batched generation with a Hugging Face model over a prepared (or synthetic) parquet split.

Shared by `radgrpo-difficulty` (pass rates of the base model) and the evaluation app. The prompt a
row gets here is the prompt training gives it:

- `build_messages` is verl's own `RLHFDataset._build_messages` (the `<image>` placeholders of the
  row's `prompt` become `{"type": "image", ...}` entries carrying the row's `images`, with their
  min/max pixel bounds);
- images are loaded by `qwen_vl_utils.process_vision_info`, as verl's agent loop does (on CPU
  installs radgrpo serves that module without torchvision, see radgrpo.models.processors);
- the text is the model's chat template through its processor (`apply_chat_template(...,
  add_generation_prompt=True)`), tokenised together with the images by the processor.

`HFGenerator.generate_row` draws the k samples of one row in a single batched `generate` call
(`num_return_sequences=k`), seeded from the row's content and the caller's seed: a row's samples do
not depend on which rows came before it, so a job killed mid-way and resumed, or split across
workers, draws exactly the samples an uninterrupted run draws.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq


def load_rows(files: Iterable[str]) -> list[dict]:
    """Every row of the parquet files, in file order (the order verl's RLHFDataset reads them)."""
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []


def files_content_hash(files: Iterable[str]) -> str:
    """sha256 over the bytes of the files, in order: the identity of a dataset split."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).name.encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


FULLY_HASHED_BYTES = 64 << 20


def model_fingerprint(model_path: str) -> str:
    """Identity of a model for caches: a local folder by its files' names and sizes plus the content of
    every file under 64 MB (configs, tokenizer, and the whole of a tiny model, whose rebuilds differ);
    a hub id by its name. Larger weight shards are not read (a 7B checkpoint is 15 GB), so shards
    rewritten in place at the same size keep the fingerprint: give each checkpoint its own folder."""
    path = Path(os.path.expanduser(model_path))
    if not path.is_dir():
        return f"hub:{model_path}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}\0".encode())
        if size < FULLY_HASHED_BYTES:
            digest.update(file.read_bytes())
    return digest.hexdigest()


def row_seed(row: dict, seed: int) -> int:
    """A 63-bit seed from the row's prompt, images and ground truth and the caller's seed."""
    content = json.dumps([row.get("prompt"), row.get("images"), row.get("reward_model")], sort_keys=True,
                         default=str)
    return int.from_bytes(hashlib.sha256(f"{seed}:{content}".encode()).digest()[:8], "big") >> 1


def build_messages(row: dict, processor: Any, prompt_key: str = "prompt", image_key: str = "images") -> list[dict]:
    """The row's chat messages with image entries, built by verl's RLHFDataset._build_messages."""
    from verl.utils.dataset.rl_dataset import RLHFDataset

    dataset = SimpleNamespace(processor=processor, image_key=image_key, video_key="videos", audio_key="audios")
    return RLHFDataset._build_messages(dataset, copy.deepcopy(row), key=prompt_key)


@dataclass
class GenerationSettings:
    """What `generate_row` draws: k samples of at most max_new_tokens at a temperature (0: greedy)."""

    k: int = 1
    temperature: float = 1.0
    max_new_tokens: int = 64
    top_p: float = 1.0
    seed: int = 0


class HFGenerator:
    """A transformers model and its processor, loaded once, generating for dataset rows.

    `device` is `cpu` or `cuda`; the model runs in float32 on CPU and bfloat16 on GPU. The model family's
    image placeholders are never sampled (as in radgrpo's hf rollout): a small model emitting
    `<|image_pad|>` would make the answer unparseable and, in training, break Qwen2.5-VL's rope indices.
    """

    def __init__(self, model_path: str, *, device: str = "cpu", trust_remote_code: bool = False,
                 prompt_key: str = "prompt", image_key: str = "images",
                 chat_template_kwargs: dict | None = None):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
        from transformers import PreTrainedTokenizerBase
        from verl.utils import hf_tokenizer

        from radgrpo.models.families import family_of_model_type
        from radgrpo.models.processors import load_processor

        self.device = device
        self.prompt_key, self.image_key = prompt_key, image_key
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.tokenizer = hf_tokenizer(model_path, trust_remote_code=trust_remote_code)
        # the family-aware processor (verl's own hf_processor returns None for families it does not know)
        processor = load_processor(model_path, trust_remote_code=trust_remote_code)
        self.processor = None if isinstance(processor, PreTrainedTokenizerBase) else processor
        config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
        family = family_of_model_type(config.model_type)  # None: a model of no registered family (text)
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        if family is not None:  # with its class patches (e.g. Phi-4-MM's vision attention), as in training
            model = family.load_model(model_path, dtype, trust_remote_code)
        else:
            auto_cls = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
            model = auto_cls.from_pretrained(model_path, dtype=dtype, attn_implementation="sdpa",
                                             trust_remote_code=trust_remote_code).eval()
        self.model = model.to(device)
        vocab = self.tokenizer.get_vocab()
        self.suppress_tokens = [vocab[t] for t in (family.suppress_tokens if family else ()) if t in vocab] or None

    def model_inputs(self, row: dict) -> dict:
        """The tokenised prompt (and pixel values) of one row, exactly as training builds it."""
        messages = build_messages(row, self.processor, self.prompt_key, self.image_key)
        if self.processor is None:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True, **self.chat_template_kwargs)
            return dict(ids)
        from qwen_vl_utils import process_vision_info

        patch = getattr(getattr(self.processor, "image_processor", None), "patch_size", 14)
        images, _videos = process_vision_info(messages, image_patch_size=patch, return_video_metadata=True)
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                  **self.chat_template_kwargs)
        return dict(self.processor(text=[text], images=images, return_tensors="pt"))

    def generate_row(self, row: dict, settings: GenerationSettings) -> list[str]:
        """k decoded completions (special tokens removed) of one row, seeded by the row's content
        (temperature 0: the greedy completion, k times)."""
        import torch

        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in self.model_inputs(row).items()}
        greedy = settings.temperature <= 0
        generation = self.model.generation_config
        torch.manual_seed(row_seed(row, settings.seed))
        with torch.no_grad():
            out = self.model.generate(
                **inputs, max_new_tokens=int(settings.max_new_tokens), do_sample=not greedy,
                temperature=None if greedy else float(settings.temperature),
                top_p=None if greedy else float(settings.top_p), top_k=None,
                num_return_sequences=1 if greedy else int(settings.k), suppress_tokens=self.suppress_tokens,
                eos_token_id=generation.eos_token_id, pad_token_id=generation.pad_token_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return texts * int(settings.k) if greedy else texts  # greedy: k identical samples, drawn once

    def generate(self, rows: list[dict], settings: GenerationSettings, *, progress: bool = True,
                 desc: str = "generating") -> Iterator[tuple[int, list[str]]]:
        """(position in `rows`, k completions) for each row, in order, with a progress bar."""
        from tqdm import tqdm

        for index, row in enumerate(tqdm(rows, desc=desc, unit="row", disable=not progress, dynamic_ncols=True)):
            yield index, self.generate_row(row, settings)


def reward_scorer(reward_options: dict):
    """A function (row, completion) -> score dict, with the configured reward option (the same entry
    verl calls during training: radgrpo.rewards.verl_entry.compute_score)."""
    from radgrpo.rewards.verl_entry import compute_score

    def score(row: dict, completion: str) -> dict:
        return compute_score(row.get("data_source"), completion, (row.get("reward_model") or {}).get("ground_truth"),
                             row.get("extra_info"), **reward_options)

    return score
