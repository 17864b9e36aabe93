"""Source readers: one module per seed data format, all producing `Sample`s.

A source module exposes `TASKS` (the tasks it can produce, the first is its default) and
`to_sample(key, record, options) -> Sample`, raising `Drop` for a record it cannot use. Reading the
file is shared (`open_records`): JSON, JSON Lines, parquet and Arrow inputs work for every source.
Adding a format is one module here plus one `conf/source/*.yaml`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from radgrpo.prep.errors import PrepError
from radgrpo.prep.jsonstream import JsonStream
from radgrpo.prep.tables import TABLE_SUFFIXES, TableStream, table_files

SOURCES = ("radvlm_llava", "medvlthinker", "chexpo_vqa", "medgemma_mcqa")


@dataclass(frozen=True)
class SourceOptions:
    """What a reader needs from the config: the task wanted and source-specific knobs."""

    task: str
    dataset_filter: frozenset[str] | None = None
    dataset_name: str | None = None       # data_source for formats that do not name their dataset
    include_context: bool = True           # MedGemma: put Indication before the question


def load_source(name: str) -> ModuleType:
    """The reader module for a source name, or a PrepError listing the known ones."""
    if name not in SOURCES:
        raise PrepError(f"unknown source {name!r}; choose one of: {', '.join(SOURCES)}")
    return importlib.import_module(f"radgrpo.prep.sources.{name}")


def open_records(path: Path) -> JsonStream | TableStream:
    """A record stream for a JSON/JSONL file, or a parquet/Arrow file or folder of them."""
    if path.is_dir() or path.suffix in TABLE_SUFFIXES:
        if not table_files(path):
            raise PrepError(f"no .parquet or .arrow files in {path}")
        return TableStream(path)
    return JsonStream(path)
