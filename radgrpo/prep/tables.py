"""Stream rows of parquet and Arrow files (MedVLThinker trainsets, LLaVA-format parquet).

Rows are read one record batch at a time, so a trainset with embedded image bytes never sits in
memory whole. A folder input reads every `*.parquet` / `*.arrow` file in it, sorted, which covers
both plain parquet shards and a `datasets.save_to_disk` folder (its `data-*.arrow` files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TABLE_SUFFIXES = (".parquet", ".arrow")


def table_files(path: Path) -> list[Path]:
    """The table files an input names: the file itself or the table files inside a folder."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in TABLE_SUFFIXES)
    return [path]


class TableStream:
    """Iterate `(row_number, row_dict)` over parquet/Arrow files; `bytes_read` estimates progress."""

    def __init__(self, path: str | Path, batch_rows: int = 1024):
        self.files = table_files(Path(path))
        self.batch_rows = batch_rows
        self.total_bytes = sum(f.stat().st_size for f in self.files)
        self.bytes_read = 0

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        row_number = 0
        for file in self.files:
            done_before, size = self.bytes_read, file.stat().st_size
            for batch, fraction in _batches(file, self.batch_rows):
                for row in batch.to_pylist():
                    yield row_number, row
                    row_number += 1
                self.bytes_read = done_before + int(size * fraction)
            self.bytes_read = done_before + size


def _batches(file: Path, batch_rows: int) -> Iterator[tuple[pa.RecordBatch, float]]:
    """Record batches of one file, each with the fraction of the file read so far."""
    if file.suffix == ".parquet":
        pf = pq.ParquetFile(file)
        total, seen = max(pf.metadata.num_rows, 1), 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            seen += batch.num_rows
            yield batch, seen / total
        return
    with pa.memory_map(str(file)) as source:
        try:
            reader = pa.ipc.open_file(source)
            n = max(reader.num_record_batches, 1)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i), (i + 1) / n
        except pa.ArrowInvalid:  # datasets writes the streaming IPC format
            source.seek(0)
            for batch in pa.ipc.open_stream(source):
                yield batch, 0.0
