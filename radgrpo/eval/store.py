"""Per-sample generations on disk, one JSON line each, so a killed evaluation resumes where it stopped.

Each line is complete before the next starts (written, flushed and fsynced one at a time); a line
cut by a kill is the only possible damage and is dropped on reading, so the sample is generated
again. Generation is seeded per row content (radgrpo.generation), hence a resumed evaluation writes
the same lines an uninterrupted one does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class GenerationStore:
    """Append-only JSONL of `{"index": row, "repeat": r, "completion": ..., ...}` records."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records = self._read()
        self._drop_torn_tail()

    def _read(self) -> dict[tuple[int, int], dict]:
        records: dict[tuple[int, int], dict] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill; its sample is generated again
            records[(int(record["index"]), int(record["repeat"]))] = record
        return records

    def _drop_torn_tail(self) -> None:
        """Rewrite the file without a torn last line, so appends start on a clean line."""
        if self.path.exists() and not self.path.read_bytes().endswith(b"\n") and self.path.stat().st_size:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self._records.values()))
            os.replace(tmp, self.path)

    def has(self, index: int, repeat: int) -> bool:
        return (index, repeat) in self._records

    def append(self, record: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._records[(int(record["index"]), int(record["repeat"]))] = record

    def records(self) -> list[dict]:
        """Every stored record, by row then repeat (the order does not depend on resumes)."""
        return [self._records[key] for key in sorted(self._records)]
