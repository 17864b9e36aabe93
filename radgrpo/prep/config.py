"""The prep config, checked: from the composed Hydra config (a plain dict) to typed options.

Every mistake a user can make in the command line ends here as one `PrepError` line naming the
option to fix, before any file is read or written.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from radgrpo.prep.errors import PrepError
from radgrpo.prep.images import ImageOptions
from radgrpo.data.prompts import PromptTemplate
from radgrpo.prep.sources import SourceOptions, load_source

_USAGE = "radgrpo-prep source=NAME task=TASK input=FILE output=DIR"
FORMATS = ("verl", "trl")


@dataclass(frozen=True)
class PrepConfig:
    source: str
    task: str
    input: Path
    val_input: Path | None
    output: Path
    format: str
    val_fraction: float
    seed: int
    source_options: SourceOptions
    image_root: Path
    images: ImageOptions
    prompt: PromptTemplate
    max_prompt_chars: int | None
    max_prompt_tokens: int | None
    processor: str | None
    strict: bool
    force: bool
    progress: bool
    max_rows_per_shard: int
    max_mb_per_shard: int

    def hash_payload(self) -> dict[str, Any]:
        """Everything that shapes the output rows (not where they go or how fast they are made)."""
        payload = asdict(self)
        for key in ("input", "val_input", "output", "force", "progress", "strict"):
            payload.pop(key)
        payload["images"].pop("workers")
        if self.source_options.dataset_filter is not None:
            payload["source_options"]["dataset_filter"] = sorted(self.source_options.dataset_filter)
        return payload

    @classmethod
    def from_mapping(cls, cfg: dict[str, Any]) -> PrepConfig:
        src = cfg.get("source") or {}
        name = src.get("name")
        module = load_source(str(name))
        task = cfg.get("task") or module.TASKS[0]
        if task not in module.TASKS:
            raise PrepError(f"source {name} has no task {task!r}; choose one of: {', '.join(module.TASKS)}")
        input_path = _existing(cfg.get("input"), "input")
        val_input = _existing(cfg.get("val_input"), "val_input") if cfg.get("val_input") else None
        output = _required(cfg.get("output"), "output")
        output = Path(os.path.expanduser(str(output))).absolute()
        fmt = cfg.get("format", "verl")
        if fmt not in FORMATS:
            raise PrepError(f"format={fmt} is not one of: {', '.join(FORMATS)}")
        val_fraction = float(cfg.get("val_fraction", 0.0))
        if not 0.0 <= val_fraction < 1.0:
            raise PrepError(f"val_fraction={val_fraction} must be in [0, 1)")

        img = cfg.get("images") or {}
        if img.get("mode", "path") not in ("path", "bytes"):
            raise PrepError(f"images.mode={img.get('mode')} is not one of: path, bytes")
        if img.get("check", "header") not in ("header", "decode", "none"):
            raise PrepError(f"images.check={img.get('check')} is not one of: header, decode, none")
        cache = img.get("cache_dir") or f"{output}_image_cache"
        images = ImageOptions(
            mode=img.get("mode", "path"), check=img.get("check", "header"),
            cache_dir=Path(os.path.expanduser(str(cache))).absolute(),
            workers=int(img.get("workers") or 8), keep_first_k=_opt_int(img, "keep_first_k"),
            strict=bool(img.get("strict", True)), min_pixels=_opt_int(img, "min_pixels"),
            max_pixels=_opt_int(img, "max_pixels"))

        filt = src.get("dataset_filter")
        if isinstance(filt, str):
            filt = [filt]
        root = src.get("image_root")
        image_root = Path(os.path.expanduser(str(root))) if root else (
            input_path if input_path.is_dir() else input_path.parent)

        try:
            template = PromptTemplate.from_mapping(cfg.get("prompt"))
        except ValueError as exc:
            raise PrepError(str(exc)) from None
        token_cfg = cfg.get("token_filter") or {}
        max_tokens = _opt_int(token_cfg, "max_prompt_tokens")
        processor = token_cfg.get("processor")
        if max_tokens is not None and not processor:
            raise PrepError("token_filter.max_prompt_tokens needs token_filter.processor=<model dir or hub id>")
        shard = cfg.get("shard") or {}
        return cls(
            source=str(name), task=task, input=input_path, val_input=val_input, output=output,
            format=fmt, val_fraction=val_fraction, seed=int(cfg.get("seed", 0)),
            source_options=SourceOptions(
                task=task, dataset_filter=frozenset(map(str, filt)) if filt else None,
                dataset_name=src.get("dataset_name"), include_context=bool(src.get("include_context", True))),
            image_root=image_root.absolute(), images=images,
            prompt=template,
            max_prompt_chars=_opt_int(cfg, "max_prompt_chars"), max_prompt_tokens=max_tokens,
            processor=processor, strict=bool(cfg.get("strict", False)), force=bool(cfg.get("force", False)),
            progress=bool(cfg.get("progress", True)),
            max_rows_per_shard=int(shard.get("max_rows", 100_000)), max_mb_per_shard=int(shard.get("max_mb", 512)),
        )


def _required(value: Any, name: str) -> Any:
    if value is None or value == "???" or value == "":
        raise PrepError(f"{name}= is required: {_USAGE}")
    return value


def _existing(value: Any, name: str) -> Path:
    path = Path(os.path.expanduser(str(_required(value, name)))).absolute()
    if not path.exists():
        raise PrepError(f"{name}={value}: no such file or folder")
    return path


def _opt_int(cfg: dict, key: str) -> int | None:
    value = cfg.get(key)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PrepError(f"{key}={value!r} must be an integer or null") from None
