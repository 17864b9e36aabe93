"""Per-row pass rates of a model on a dataset split: what `sampling=hard` selects on.

A row's pass rate is passes / k over k samples at a temperature, where a sample passes when the
configured reward scores it at least `threshold` (MedVLThinker: pass count over 16 samples at
temperature 1.0, keep 1..7; seed 003 drops the rows the SFT model already answers correctly - a
window [0, max] at threshold = the reward of a correct answer).

Results are cached under `<paths.cache>/pass_rates/<key>/`, where the key hashes everything that
determines them: the model (radgrpo.generation.model_fingerprint), the split's content hash, k,
temperature, top_p, max_new_tokens, the sampling seed, the reward option and the threshold. The
folder holds

    key.json             the key's parts, readable
    chunks/<start>.parquet   rows [start, start + chunk_size), each written atomically
    pass_rates.parquet   the whole table (row, id, data_source, pass_count, k, pass_rate, scores)
    summary.json         counts, mean pass rate and the histogram of pass counts

A killed job leaves complete chunks only (a chunk is written to a temporary name and renamed); the
rerun starts at the first missing chunk and, since each row's samples are seeded by its content
(radgrpo.generation.row_seed), ends with the table an uninterrupted run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from radgrpo.atomic import replace_atomically

TABLE = "pass_rates.parquet"
SUMMARY = "summary.json"
# Fault injection for the resume test: SIGKILL this process after writing this many chunks.
KILL_AFTER_CHUNKS_ENV = "RADGRPO_DIFFICULTY_KILL_AFTER_CHUNKS"

SCHEMA = pa.schema([
    ("row", pa.int64()), ("id", pa.string()), ("data_source", pa.string()), ("pass_count", pa.int64()),
    ("k", pa.int64()), ("pass_rate", pa.float64()), ("scores", pa.list_(pa.float64())),
])


@dataclass(frozen=True)
class EstimateSettings:
    """How pass rates are estimated (conf/sampling/hard.yaml `estimate:`)."""

    k: int
    temperature: float
    threshold: float
    max_new_tokens: int
    top_p: float = 1.0
    seed: int = 0

    @classmethod
    def from_config(cls, estimate) -> EstimateSettings:
        return cls(k=int(estimate.k), temperature=float(estimate.temperature), threshold=float(estimate.threshold),
                   max_new_tokens=int(estimate.max_new_tokens), top_p=float(estimate.get("top_p", 1.0)),
                   seed=int(estimate.get("seed", 0)))


def cache_key(model_id: str, dataset_hash: str, reward_options: dict, settings: EstimateSettings) -> dict:
    """The parts that determine a pass-rate table (written as key.json)."""
    return {"model": model_id, "dataset": dataset_hash, "reward": reward_options, **settings.__dict__}


def cache_dir(cache_root: str | Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return Path(cache_root) / "pass_rates" / digest


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    replace_atomically(path, lambda tmp: pq.write_table(table, tmp))


def _atomic_write_text(text: str, path: Path) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))


def read_table(folder: Path) -> pa.Table | None:
    """The finished table of a cache folder, or None when it is not complete."""
    path = Path(folder) / TABLE
    return pq.read_table(path) if path.exists() else None


def histogram(pass_counts: list[int], k: int) -> list[int]:
    """Number of rows with 0, 1, ..., k passes."""
    counts = [0] * (k + 1)
    for count in pass_counts:
        counts[int(count)] += 1
    return counts


def summarise(table: pa.Table, key: dict) -> dict:
    k = int(key["k"])
    counts = table.column("pass_count").to_pylist()
    rates = table.column("pass_rate").to_pylist()
    return {"rows": table.num_rows, "k": k, "threshold": key["threshold"],
            "mean_pass_rate": round(sum(rates) / len(rates), 6) if rates else None,
            "histogram": {f"{i}/{k}": n for i, n in enumerate(histogram(counts, k))}}


def format_histogram(summary: dict, width: int = 40) -> str:
    """The histogram of pass counts as text bars, one line per count."""
    hist = summary["histogram"]
    top = max(hist.values(), default=0) or 1
    lines = [f"pass rates of {summary['rows']} rows (k={summary['k']}, pass: score >= {summary['threshold']}); "
             f"mean {summary['mean_pass_rate']}"]
    for label, n in hist.items():
        lines.append(f"  {label:>7} {'#' * round(width * n / top):<{width}} {n}")
    return "\n".join(lines)


RowScorer = Callable[[dict, str], dict]


def estimate_pass_rates(rows: list[dict], folder: Path, key: dict, generator, settings: EstimateSettings,
                        score: RowScorer, *, chunk_size: int = 32, progress: bool = True) -> tuple[pa.Table, bool]:
    """The pass-rate table of `rows` (cached in `folder`); returns (table, cache_hit).

    `generator` is a radgrpo.generation.HFGenerator (anything with its
    `generate(rows, settings, progress=...)`); `score(row, completion)` returns the reward dict. Complete chunks already in
    `folder/chunks` are kept, so a killed run generates the missing chunks only.
    """
    from tqdm import tqdm

    from radgrpo.generation import GenerationSettings

    folder = Path(folder)
    done = read_table(folder)
    if done is not None:
        return done, True
    chunks = folder / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(json.dumps(key, indent=1, sort_keys=True, default=str), folder / "key.json")
    starts = range(0, len(rows), chunk_size)
    present = {int(p.stem) for p in chunks.glob("*.parquet")}
    kill_after = int(os.environ.get(KILL_AFTER_CHUNKS_ENV, "0") or 0)
    gen = GenerationSettings(k=settings.k, temperature=settings.temperature, max_new_tokens=settings.max_new_tokens,
                             top_p=settings.top_p, seed=settings.seed)
    done_rows = sum(min(chunk_size, len(rows) - s) for s in starts if s in present)
    written = 0
    with tqdm(total=len(rows), initial=done_rows, desc="pass rates", unit="row", disable=not progress,
              dynamic_ncols=True) as bar:
        for start in (s for s in starts if s not in present):
            records = []
            for offset, completions in generator.generate(rows[start:start + chunk_size], gen, progress=False):
                index = start + offset
                scores = [float(score(rows[index], text)["score"]) for text in completions]
                passes = sum(s >= settings.threshold for s in scores)
                extra = rows[index].get("extra_info") or {}
                records.append({"row": index, "id": None if extra.get("id") is None else str(extra["id"]),
                                "data_source": rows[index].get("data_source"), "pass_count": passes,
                                "k": settings.k, "pass_rate": passes / settings.k, "scores": scores})
                bar.update(1)
            _atomic_write_table(pa.Table.from_pylist(records, schema=SCHEMA), chunks / f"{start:09d}.parquet")
            written += 1
            if kill_after and written >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    parts = [pq.read_table(chunks / f"{s:09d}.parquet", schema=SCHEMA) for s in starts]
    table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
    if table.column("row").to_pylist() != list(range(len(rows))):
        raise RuntimeError(f"pass-rate chunks in {chunks} do not cover rows 0..{len(rows) - 1}; delete the folder")
    _atomic_write_text(json.dumps(summarise(table, key), indent=1), folder / SUMMARY)
    _atomic_write_table(table, folder / TABLE)
    return table, False


def pass_rate_cache(cfg, model_path: str, files: list[str]) -> tuple[Path, dict]:
    """The cache folder and key for `files` under the composed config's model, reward and
    `sampling.estimate` - the one rule both radgrpo-difficulty and `sampling=hard` look it up by."""
    from radgrpo.generation import files_content_hash, model_fingerprint
    from radgrpo.rewards.verl_entry import reward_entry

    settings = EstimateSettings.from_config(cfg.sampling.estimate)
    key = cache_key(model_fingerprint(model_path), files_content_hash(files), reward_entry(cfg.reward)["kwargs"],
                    settings)
    return cache_dir(cfg.paths.cache, key), key


# Overrides of a training job that change the pass-rate cache key (the rest - size, seed, algorithm,
# logger - do not): repeated in the command printed when the cache is missing. `sampling` is the
# option (its `estimate:` block), not its size or window.
_KEY_OVERRIDE_PREFIXES = ("model", "data", "prompt", "reward", "sampling.estimate", "paths.cache")
_KEY_OVERRIDES = ("sampling",)


def difficulty_command(overrides: list[str]) -> str:
    """The radgrpo-difficulty command producing the cache a training job with `overrides` looks up."""
    kept = []
    for item in overrides:
        key = item.lstrip("+~").partition("=")[0]
        if key in _KEY_OVERRIDES or any(key == p or key.startswith(p + ".") for p in _KEY_OVERRIDE_PREFIXES):
            kept.append(item)
    return " ".join(["radgrpo-difficulty", *kept])


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def cached_pass_rates(cfg, model_path: str):
    """The loader `sampling=hard` calls when the rows carry no pass rate: `loader(train_files, rows)`
    returns the pass rates aligned with rows, from `sampling.estimate.file` or the cache; ValueError
    (one line, with the command to run) when there is none."""

    def load(files: list[str], rows: list[dict]) -> list[float]:
        if cfg.sampling.get("estimate") is None:
            raise ValueError(f"sampling={cfg.sampling.get('name')}: the rows carry no extra_info."
                             f"{cfg.sampling.get('pass_rate_key', 'pass_rate')} and the option has no `estimate:` "
                             "block to find radgrpo-difficulty's table (see conf/sampling/hard.yaml)")
        explicit = cfg.sampling.estimate.get("file")
        if explicit:
            if not Path(str(explicit)).is_file():
                raise ValueError(f"sampling.estimate.file: file not found: {explicit}")
            table, where = pq.read_table(str(explicit)), str(explicit)
        else:
            folder, _ = pass_rate_cache(cfg, model_path, files)
            table, where = read_table(folder), str(folder)
            if table is None:
                est = cfg.sampling.estimate
                raise ValueError(
                    f"sampling=hard: no pass rates for these training rows (no extra_info."
                    f"{cfg.sampling.get('pass_rate_key', 'pass_rate')}, no cached table for this model, data, "
                    f"reward and k={est.k}, temperature={est.temperature}, threshold={est.threshold}); "
                    f"produce them with: {difficulty_command(_job_overrides())}")
        return aligned_rates(table, rows, where)

    return load


def aligned_rates(table: pa.Table, rows: list[dict], where: str) -> list[float]:
    """The table's pass rates in row order, checked against the rows' ids."""
    if table.num_rows != len(rows):
        raise ValueError(f"pass-rate table {where} has {table.num_rows} rows, the training data {len(rows)}")
    ids = table.column("id").to_pylist()
    for position, (row, table_id) in enumerate(zip(rows, ids)):
        row_id = (row.get("extra_info") or {}).get("id")
        if table_id is not None and row_id is not None and str(row_id) != table_id:
            raise ValueError(f"pass-rate table {where} row {position} is {table_id!r}, the training data's "
                             f"{row_id!r}: it was computed for other data")
    return [float(r) for r in table.column("pass_rate").to_pylist()]
