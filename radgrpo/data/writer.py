"""Write a prepared dataset folder: parquet shards per split plus manifest.json, published atomically.

Used by radgrpo-prep and meant for any other producer of prepared data (e.g. the engine's synthetic
generator), so that every dataset folder radgrpo reads has the same shape:

    <output>/train/part-00000.parquet ...   verl rows (the engine globs <output>/train/*.parquet)
    <output>/val/part-00000.parquet ...
    <output>/<table>/<split>/part-*.parquet  extra layouts, e.g. trl/train/
    <output>/manifest.json                   written last; its presence means "complete"

API:

    with DatasetWriter("/data/prepared/x", schemas={"": verl_schema(...)}) as writer:
        writer.add(row_dict, split="train")            # one row at a time, any number
        writer.add_table(arrow_table, split="val")     # or a batch of rows at once
        writer.add(trl_dict, split="train", table="trl")
        writer.publish({"source": ..., "counts": ...})  # shards closed, manifest written, renamed

Rows are buffered `row_group_rows` at a time, so memory is bounded by that, not by the dataset. A
shard is closed after `max_rows_per_shard` rows or about `max_bytes_per_shard` bytes (arrow size,
embedded image bytes included). Everything is
written into a hidden sibling folder `.<name>.tmp-<pid>-<random>` and renamed over `<output>` only by
`publish`; leaving the `with` block without publishing (an exception, Ctrl-C) deletes it, and a
killed process leaves only that hidden folder, which has no manifest and is removed by the next
writer for the same output. A table without a schema in `schemas` gets one inferred from its first
rows. `publish` adds `files` (per table and split: shard names and row counts) to the manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"


class DatasetWriter:
    def __init__(self, output: str | Path, schemas: dict[str, pa.Schema] | None = None,
                 max_rows_per_shard: int = 100_000, max_bytes_per_shard: int = 512 << 20,
                 row_group_rows: int = 8192):
        self.output = Path(output).absolute()
        self.schemas = dict(schemas or {})
        self.max_rows_per_shard = max_rows_per_shard
        self.max_bytes_per_shard = max_bytes_per_shard
        self.row_group_rows = row_group_rows
        self.tmp = self.output.parent / f".{self.output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._shards: dict[tuple[str, str], _Shards] = {}
        self._published = False

    def __enter__(self) -> DatasetWriter:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(self.output)
        self.tmp.mkdir()
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._published:
            self.abort()

    def add(self, row: dict[str, Any], split: str, table: str = "") -> None:
        """Queue one row for `<table>/<split>/`."""
        self._shards_of(table, split).add(row)

    def add_table(self, rows: pa.Table, split: str, table: str = "") -> None:
        """Append a batch of rows (an arrow table with this table's schema) to `<table>/<split>/`."""
        if rows.num_rows:
            shards = self._shards_of(table, split)
            shards.flush()
            shards.rows += rows.num_rows
            shards.write(rows)

    def _shards_of(self, table: str, split: str) -> _Shards:
        key = (table, split)
        if key not in self._shards:
            folder = self.tmp / table / split if table else self.tmp / split
            self._shards[key] = _Shards(folder, self.schemas.get(table), self)
        return self._shards[key]

    def counts(self, table: str = "") -> dict[str, int]:
        """Rows added so far per split of one table."""
        return {split: s.rows for (t, split), s in self._shards.items() if t == table}

    def publish(self, manifest: dict[str, Any]) -> Path:
        """Close every shard, write manifest.json, and atomically replace `output` with the result."""
        files = {}
        for (table, split), shards in sorted(self._shards.items()):
            shards.close()
            files.setdefault(table or "verl", {})[split] = shards.files
        manifest = {**manifest, "files": files}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        old = None
        if self.output.exists():
            old = self.output.parent / f".{self.output.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(self.output, old)
        os.rename(self.tmp, self.output)
        self._published = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.output

    def abort(self) -> None:
        """Drop everything written so far."""
        for shards in self._shards.values():
            shards.close(discard=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


class _Shards:
    """The parquet shards of one (table, split): buffered rows, rotated by rows and bytes."""

    def __init__(self, folder: Path, schema: pa.Schema | None, owner: DatasetWriter):
        self.folder = folder
        self.schema = schema
        self.owner = owner
        self.buffer: list[dict] = []
        self.writer: pq.ParquetWriter | None = None
        self.shard_rows = 0
        self.shard_bytes = 0
        self.rows = 0
        self.files: list[dict[str, Any]] = []

    def add(self, row: dict) -> None:
        self.buffer.append(row)
        self.rows += 1
        if len(self.buffer) >= self.owner.row_group_rows:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = pa.Table.from_pylist(self.buffer, schema=self.schema)
            self.buffer = []
            self.write(table)

    def write(self, table: pa.Table) -> None:
        """Write rows to the open shard, starting new shards at the row and byte bounds."""
        if self.schema is None:
            self.schema = table.schema
        per_row = table.nbytes / max(table.num_rows, 1)
        while table.num_rows:
            if self.writer is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                name = f"part-{len(self.files):05d}.parquet"
                self.writer = pq.ParquetWriter(self.folder / name, self.schema, compression="snappy")
                self.files.append({"name": name, "rows": 0})
            room_rows = self.owner.max_rows_per_shard - self.shard_rows
            room_bytes = int((self.owner.max_bytes_per_shard - self.shard_bytes) / per_row) if per_row else room_rows
            part = table.slice(0, max(1, min(room_rows, room_bytes)))
            table = table.slice(part.num_rows)
            self.writer.write_table(part)
            self.files[-1]["rows"] += part.num_rows
            self.shard_rows += part.num_rows
            self.shard_bytes += per_row * part.num_rows
            if (self.shard_rows >= self.owner.max_rows_per_shard
                    or self.shard_bytes >= self.owner.max_bytes_per_shard):
                self._close_shard()

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.shard_rows = self.shard_bytes = 0

    def close(self, discard: bool = False) -> None:
        if not discard:
            self.flush()
        self._close_shard()


def _remove_stale_temps(output: Path) -> None:
    """Delete temp folders of earlier writers for `output` whose process is gone."""
    for tmp in output.parent.glob(f".{output.name}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
    for old in output.parent.glob(f".{output.name}.old-*"):
        shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
