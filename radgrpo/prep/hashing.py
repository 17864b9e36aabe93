"""Content hashes that decide whether a rerun has anything to do."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from radgrpo.prep.tables import TABLE_SUFFIXES, table_files


def file_sha256(path: Path, chunk: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def input_fingerprint(path: Path) -> dict[str, Any]:
    """Path, size and sha256 of an input (of each table file, for a folder of shards)."""
    files = table_files(path) if path.is_dir() or path.suffix in TABLE_SUFFIXES else [path]
    return {"path": str(path), "files": [
        {"name": str(f.relative_to(path)) if path.is_dir() else f.name,
         "bytes": f.stat().st_size, "sha256": file_sha256(f)} for f in files]}


def config_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
