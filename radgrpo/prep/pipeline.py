"""The prep run: inputs -> samples -> checked images -> prompts -> filters -> shards + manifest.

Records flow in batches of `BATCH` so image checks of a batch run in parallel while memory stays
bounded; every record ends kept, dropped (malformed) or filtered, counted in `PrepStats`. The run is
skipped when `<output>/manifest.json` already records the same input hashes and config hash.
"""

from __future__ import annotations

import json
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from radgrpo.prep.config import PrepConfig
from radgrpo.prep.errors import Drop, PrepError
from radgrpo.prep.hashing import config_hash, input_fingerprint
from radgrpo.prep.images import ImageResolver
from radgrpo.prep.rows import TRL_SCHEMA, ground_truth_of, trl_row, verl_row, verl_schema
from radgrpo.prep.sources import load_source, open_records
from radgrpo.prep.stats import PrepStats
from radgrpo.prep.writer import MANIFEST, DatasetWriter

BATCH = 2048
STRICT_EXAMPLES = 10


@dataclass
class PrepResult:
    output: Path
    manifest: dict[str, Any]
    skipped: bool  # True when the output was already up to date


def run(cfg: PrepConfig, log=None) -> PrepResult:
    """Prepare `cfg.input` into `cfg.output`; raises PrepError on user errors and strict failures."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    inputs = [("auto", cfg.input)] + ([("val", cfg.val_input)] if cfg.val_input else [])
    fingerprints = [input_fingerprint(path) for _, path in inputs]
    chash = config_hash(cfg.hash_payload())
    previous = _read_manifest(cfg.output)
    if (not cfg.force and previous and previous.get("config_hash") == chash
            and previous.get("inputs") == fingerprints):
        log(f"radgrpo-prep: {cfg.output} is up to date (same inputs and config); nothing to do")
        return PrepResult(cfg.output, previous, skipped=True)

    started = time.time()
    module = load_source(cfg.source)
    stats = PrepStats()
    resolver = ImageResolver(cfg.images, cfg.image_root)
    counter = None
    if cfg.max_prompt_tokens is not None:
        from radgrpo.prep.tokens import TokenCounter  # imports transformers
        counter = TokenCounter(cfg.processor)
    schemas = {"": verl_schema(cfg.images.mode, cfg.images.min_pixels is not None,
                               cfg.images.max_pixels is not None), "trl": TRL_SCHEMA}
    try:
        with DatasetWriter(cfg.output, schemas, max_rows_per_shard=cfg.max_rows_per_shard,
                           max_bytes_per_shard=cfg.max_mb_per_shard << 20) as writer:
            for split_rule, path in inputs:
                stream = open_records(path)
                with _progress(cfg, stream, path) as bar:
                    for batch in _batches(stream):
                        _convert_batch(cfg, module, batch, split_rule, resolver, counter, stats, writer)
                        bar.update(stream.bytes_read - bar.n)
                        bar.set_postfix(kept=sum(stats.kept.values()), dropped=stats.malformed,
                                        filtered=sum(stats.filtered.values()), refresh=False)
                        if cfg.strict and stats.malformed >= STRICT_EXAMPLES:
                            break
            if cfg.strict and stats.malformed:
                raise PrepError(_strict_message(stats))
            if not sum(stats.kept.values()):
                raise PrepError(f"no record of {cfg.input} was kept: {_reasons(stats)}")
            manifest = {
                "radgrpo_prep": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "source": cfg.source, "task": cfg.task, "inputs": fingerprints, "config_hash": chash,
                "config": cfg.hash_payload(), "seconds": round(time.time() - started, 3),
                "images": {"converted_or_extracted": resolver.converted, "cache_dir": str(cfg.images.cache_dir),
                           "mode": cfg.images.mode},
                **stats.to_dict(),
            }
            writer.publish(manifest)
    finally:
        resolver.close()
    log(f"radgrpo-prep: wrote {cfg.output}: kept {dict(stats.kept)}, {_reasons(stats)}")
    return PrepResult(cfg.output, manifest, skipped=False)


def _convert_batch(cfg, module, batch, split_rule, resolver, counter, stats, writer) -> None:
    samples = []
    for key, record in batch:
        if isinstance(record, Drop):
            stats.drop(record, key)
            continue
        try:
            samples.append((key, module.to_sample(key, record, cfg.source_options)))
        except Drop as drop:
            stats.drop(drop, key, record.get("id") if isinstance(record, dict) else None)
    resolver.prefetch([ref for _, s in samples for ref in s.images])
    for key, sample in samples:
        try:
            images = resolver.entries(sample.images)
            messages = cfg.prompt.render(sample, len(images))
            chars = sum(len(m["content"]) for m in messages)
            if cfg.max_prompt_chars is not None and chars > cfg.max_prompt_chars:
                raise Drop("prompt_too_long", f"{chars} characters")
            if counter is not None:
                tokens = counter.count(messages, images)
                if tokens > cfg.max_prompt_tokens:
                    raise Drop("prompt_tokens_over_limit", f"{tokens} tokens")
                stats.tokens(tokens)
            truth = ground_truth_of(sample)
        except Drop as drop:
            stats.drop(drop, key, sample.id)
            continue
        except ValueError as exc:  # encode_ground_truth's own checks
            stats.drop(Drop("bad_field_type", str(exc)), key, sample.id)
            continue
        split = split_rule if split_rule != "auto" else _split_of(sample.id, cfg)
        index = stats.kept[split]  # rows of this split so far
        nbytes = sum(len(e["bytes"]) for e in images) if cfg.images.mode == "bytes" else 0
        writer.add(verl_row(sample, messages, images, split, index, key if isinstance(key, int) else -1,
                            truth), split, nbytes=nbytes)
        if cfg.format == "trl":
            writer.add(trl_row(sample, messages, images, truth), split, table="trl", nbytes=nbytes)
        stats.keep(split, sample.dataset, sample.answer_type, chars, len(images),
                   sample.truth.get("boxes") if sample.task == "grounding" else None)
    stats.flush()


def _split_of(rid: str, cfg: PrepConfig) -> str:
    """A seeded, order-independent train/val assignment by record id."""
    if cfg.val_fraction <= 0:
        return "train"
    bucket = zlib.crc32(f"{cfg.seed}:{rid}".encode("utf-8", "surrogatepass")) / 2**32
    return "val" if bucket < cfg.val_fraction else "train"


def _batches(stream) -> Iterator[list]:
    it = iter(stream)
    while batch := list(islice(it, BATCH)):
        yield batch


def _progress(cfg: PrepConfig, stream, path: Path):
    from tqdm import tqdm

    return tqdm(total=stream.total_bytes, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"prep {path.name}", disable=not cfg.progress, mininterval=1.0, file=sys.stderr)


def _read_manifest(output: Path) -> dict | None:
    try:
        return json.loads((output / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _reasons(stats: PrepStats) -> str:
    dropped = ", ".join(f"{k}={v}" for k, v in sorted(stats.dropped.items())) or "none"
    filtered = ", ".join(f"{k}={v}" for k, v in sorted(stats.filtered.items())) or "none"
    return f"dropped: {dropped}; filtered: {filtered}"


def _strict_message(stats: PrepStats) -> str:
    first = "; ".join(f"record {e['record']} (id {e['id']}): {e['reason']} {e['detail']}".strip()
                      for e in stats.examples[:STRICT_EXAMPLES])
    return f"strict=true and {stats.malformed} malformed record(s) found; first: {first}"
