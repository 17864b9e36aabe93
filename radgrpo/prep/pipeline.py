"""The prep run: inputs -> samples -> checked images -> prompts -> filters -> shards + manifest.

Records flow in batches so image checks of a batch run in parallel while memory stays bounded;
every record ends kept, dropped (malformed) or filtered, counted in `PrepStats`. RadVLM LLaVA JSON
lists take the arrow fast path (`fastpath`), which hands every record it is not sure about back to
the per-record path here, so both produce the same rows. The run is skipped when
`<output>/manifest.json` already records the same input hashes and config hash.
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

from radgrpo.data.schema import ABILITY_BY_TASK
from radgrpo.prep.config import PrepConfig
from radgrpo.prep.errors import Drop, PrepError
from radgrpo.prep.hashing import config_hash, input_fingerprint
from radgrpo.prep.images import ImageResolver
from radgrpo.prep.rows import TRL_SCHEMA, VerlColumns, extra_info, ground_truth_of, trl_row, verl_schema
from radgrpo.prep.sample import Sample
from radgrpo.prep.sources import load_source, open_records
from radgrpo.prep.stats import PrepStats
from radgrpo.data.writer import MANIFEST, DatasetWriter

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
    # with a val_input, the split comes from the file; otherwise from the seeded hash of the id
    inputs = [("train", cfg.input), ("val", cfg.val_input)] if cfg.val_input else [("auto", cfg.input)]
    fingerprints = [input_fingerprint(path) for _, path in inputs]
    chash = config_hash(cfg.hash_payload())
    previous = _read_manifest(cfg.output)
    if (not cfg.force and previous and previous.get("config_hash") == chash
            and previous.get("inputs") == fingerprints):
        log(f"radgrpo-prep: {cfg.output} is up to date (same inputs and config); nothing to do")
        return PrepResult(cfg.output, previous, skipped=True)

    started = time.time()
    schema = verl_schema(cfg.images.mode, cfg.images.min_pixels is not None, cfg.images.max_pixels is not None)
    resolver = ImageResolver(cfg.images, cfg.image_root)
    try:
        with DatasetWriter(cfg.output, {"": schema, "trl": TRL_SCHEMA}, max_rows_per_shard=cfg.max_rows_per_shard,
                           max_bytes_per_shard=cfg.max_mb_per_shard << 20) as writer:
            conv = Converter(cfg, resolver, writer, schema)
            for split_rule, path in inputs:
                conv.split_rule = split_rule
                _convert_input(cfg, conv, path)
                if conv.stop:
                    break
            stats = conv.stats
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


def _convert_input(cfg: PrepConfig, conv: Converter, path: Path) -> None:
    from radgrpo.prep import fastpath

    blocks = fastpath.blocks(cfg, path)
    stream = blocks if blocks is not None else open_records(path)
    with _progress(cfg, stream, path) as bar:
        for batch in (blocks if blocks is not None else _batches(stream)):
            if isinstance(batch, list):
                conv.records(batch)
            else:
                fastpath.convert_block(conv, *batch)
            conv.flush()
            bar.update(stream.bytes_read - bar.n)
            bar.set_postfix(kept=sum(conv.stats.kept.values()), dropped=conv.stats.malformed,
                            filtered=sum(conv.stats.filtered.values()), refresh=False)
            if conv.stop:
                return


class Converter:
    """The per-record path, and the row sink both paths write to (per-split columns)."""

    def __init__(self, cfg: PrepConfig, resolver: ImageResolver, writer: DatasetWriter, schema):
        self.cfg = cfg
        self.module = load_source(cfg.source)
        self.resolver = resolver
        self.writer = writer
        self.stats = PrepStats()
        self.columns = {split: VerlColumns(schema) for split in ("train", "val")}
        self.split_rule = "auto"
        self.rows_per_split = {"train": 0, "val": 0}
        self.schema = schema
        self.memo: dict[str, dict] = {}  # per-run caches of the fast path
        self.counter = None
        if cfg.max_prompt_tokens is not None:
            from radgrpo.prep.tokens import TokenCounter  # imports transformers
            self.counter = TokenCounter(cfg.processor)

    @property
    def stop(self) -> bool:
        """strict=true stops reading once enough offenders are collected to report."""
        return self.cfg.strict and self.stats.malformed >= STRICT_EXAMPLES

    def records(self, batch: list[tuple[Any, Any]]) -> None:
        """Convert a batch of raw records (image checks of the batch run in parallel)."""
        samples = [s for s in (self.sample(key, record) for key, record in batch) if s is not None]
        self.resolver.prefetch([ref for _, s in samples for ref in s.images])
        for key, sample in samples:
            self.emit(key, sample)

    def sample(self, key: Any, record: Any) -> tuple[Any, Sample] | None:
        if isinstance(record, Drop):
            self.stats.drop(record, key)
            return None
        try:
            return key, self.module.to_sample(key, record, self.cfg.source_options)
        except Drop as drop:
            self.stats.drop(drop, key, record.get("id") if isinstance(record, dict) else None)
            return None

    def emit(self, key: Any, sample: Sample) -> None:
        """Images, prompt, filters and ground truth of one sample; then one row, or a counted drop."""
        cfg = self.cfg
        try:
            images = self.resolver.entries(sample.images)
            messages = cfg.prompt.render(sample.question, sample.task, len(images), sample.history)
            chars = sum(len(m["content"]) for m in messages)
            if cfg.max_prompt_chars is not None and chars > cfg.max_prompt_chars:
                raise Drop("prompt_too_long", f"{chars} characters")
            if self.counter is not None:
                tokens = self.counter.count(messages, images)
                if tokens > cfg.max_prompt_tokens:
                    raise Drop("prompt_tokens_over_limit", f"{tokens} tokens")
                self.stats.tokens(tokens)
            truth = ground_truth_of(sample)
        except Drop as drop:
            self.stats.drop(drop, key, sample.id)
            return
        except ValueError as exc:  # encode_ground_truth's own checks
            self.stats.drop(Drop("bad_field_type", str(exc)), key, sample.id)
            return
        split = self.split_of(sample.id)
        index = self.next_index(split)
        source_index = key if isinstance(key, int) else -1
        self.columns[split].add(sample.dataset, messages, images, ABILITY_BY_TASK[sample.task], truth,
                                extra_info(sample, split, index, source_index, len(images)))
        if cfg.format == "trl":
            self.writer.add(trl_row(sample, messages, images, truth), split, table="trl")
        self.stats.keep(split, sample.dataset, sample.answer_type, chars, len(images),
                        sample.truth.get("boxes") if sample.task == "grounding" else None)

    def next_index(self, split: str) -> int:
        """`extra_info.index` of the next row of `split` (rows are numbered per split, from 0)."""
        index = self.rows_per_split[split]
        self.rows_per_split[split] = index + 1
        return index

    def split_of(self, rid: str) -> str:
        """A seeded, order-independent train/val assignment by record id."""
        if self.split_rule != "auto":
            return self.split_rule
        if self.cfg.val_fraction <= 0:
            return "train"
        bucket = zlib.crc32(f"{self.cfg.seed}:{rid}".encode("utf-8", "surrogatepass")) / 2**32
        return "val" if bucket < self.cfg.val_fraction else "train"

    def flush(self) -> None:
        for split, columns in self.columns.items():
            if len(columns):
                self.writer.add_table(columns.table(), split)
        self.stats.flush()


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
