"""Read an offline wandb run back: config, labels, history, summary and logged artifacts.

wandb 0.31 has no Python reader for its run files (the old `wandb.sdk.internal.datastore` is gone;
the Go core writes them). A `run-<id>.wandb` file is a LevelDB-style log - a 7-byte header (":W&B",
magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC32, length,
type FULL/FIRST/MIDDLE/LAST) - of `wandb.proto.wandb_internal_pb2.Record` messages, which are
decoded with wandb's own protobuf classes. A resumed run (a requeued job, the post-run summary)
writes one `offline-run-<time>-<id>` folder per process; `read_offline_run` merges them in time
order, as `wandb sync` replays them.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK_BYTES = 32768
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> Iterator[Any]:
    """Every Record of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, magic, _ = FILE_HEADER.unpack_from(data)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a wandb run file")
    pos, pending = FILE_HEADER.size, b""
    while pos + CHUNK_HEADER.size <= len(data):
        left = BLOCK_BYTES - pos % BLOCK_BYTES
        if left < CHUNK_HEADER.size:
            pos += left
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if kind == 0:  # block padding
            pos += left
            continue
        if pos + CHUNK_HEADER.size + length > len(data):  # a process killed mid-write (preemption)
            return
        chunk = data[pos + CHUNK_HEADER.size:pos + CHUNK_HEADER.size + length]
        pos += CHUNK_HEADER.size + length
        if kind == FULL:
            yield wandb_internal_pb2.Record.FromString(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield wandb_internal_pb2.Record.FromString(pending + chunk)
            pending = b""


@dataclass
class OfflineRun:
    run_id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    artifact_files: list[str] = field(default_factory=list)  # paths inside logged artifacts (tables, media)
    folders: list[Path] = field(default_factory=list)


def _set(target: dict, item) -> None:
    keys = list(item.nested_key) or [item.key]
    value = json.loads(item.value_json)
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _read_into(run: OfflineRun, path: Path) -> None:
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name = r.run_id, r.display_name or run.name
            run.group, run.job_type = r.run_group or run.group, r.job_type or run.job_type
            run.tags = list(r.tags) or run.tags
            for item in r.config.update:
                _set(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                _set(row, item)
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
        elif kind == "artifact":
            run.artifact_files.extend(c.path for c in record.artifact.manifest.contents)


def offline_run_folders(wandb_dir: Path, run_id: str) -> list[Path]:
    """The `offline-run-<time>-<id>` folders of one run under `<WANDB_DIR>/wandb`, oldest first."""
    return sorted(Path(wandb_dir).glob(f"wandb/offline-run-*-{run_id}"))


def read_offline_run(wandb_dir: Path, run_id: str) -> OfflineRun:
    """The run `run_id` as its offline folders under `wandb_dir` (a run folder) recorded it."""
    run = OfflineRun()
    run.folders = offline_run_folders(wandb_dir, run_id)
    if not run.folders:
        raise FileNotFoundError(f"no offline wandb run {run_id} under {wandb_dir}/wandb")
    for folder in run.folders:
        _read_into(run, folder / f"run-{run_id}.wandb")
    return run
