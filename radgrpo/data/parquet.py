"""Publish a prepared dataset folder atomically: train/ and val/ parquet plus manifest.json.

A dataset is built in a hidden staging folder next to its target and renamed into place only when
complete, so an interrupted build never leaves a folder that looks finished (manifest.json is the
marker that it is). Readers (verl's RLHFDataset) take the folder's `train/` and `val/` parquet files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq


def _manifest(built: dict, files: dict[str, Path]) -> dict:
    digest = hashlib.sha256()
    for path in sorted(files.values()):
        digest.update(path.read_bytes())
    return {
        "source": built.get("source"),
        "params": built.get("params", {}),
        "counts": {split: len(rows) for split, rows in built["splits"].items()},
        "per_data_source": {
            split: dict(Counter(row["data_source"] for row in rows)) for split, rows in built["splits"].items()
        },
        "dropped": built.get("dropped", {}),
        "content_hash": digest.hexdigest(),
    }


def write_dataset(target: Path, build: Callable[[Path], dict]) -> Path:
    """Run `build(staging)` -> {"splits": {name: [rows]}, "source", "params"}; publish `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        built = build(staging)
        files = {}
        for split, rows in built["splits"].items():
            (staging / split).mkdir()
            files[split] = staging / split / "part-00000.parquet"
            pq.write_table(pa.Table.from_pylist(rows), files[split])
        (staging / "manifest.json").write_text(json.dumps(_manifest(built, files), indent=2))
        try:
            staging.rename(target)
        except OSError:
            if not (target / "manifest.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
