"""Training-data subsets for sweeps over data size and sampling strategy.

- `all`: every row.
- `uniform`: a seeded subset of `size` rows that keeps the proportions of the `stratify_by` keys
  (CheX-Phi4MM's uniform_sample, which never set a seed).
- `hard`: first keep the rows whose base-model pass rate lies in [min_pass_rate, max_pass_rate]
  (MedVLThinker keeps 1..7 correct of 16), then sample as `uniform`. The pass rate is read from
  `extra_info.<pass_rate_key>` (a prepared dataset annotated with it), else from radgrpo-difficulty's
  cached table for the run's model, data and reward (radgrpo.difficulty); without either the run
  stops with the command that produces it.

Every strategy writes the ids of the rows it trains on to `<run_dir>/data/train_ids.json`.

Subsets are nested: all sizes are prefixes of one seeded order, built by interleaving the strata
(each row's rank is its position within its stratum divided by the stratum size), so the
1000-row subset contains the 500-row one and size effects are not confounded with resampling
noise - unlike verl's `data.train_max_samples`, which draws a fresh subset per size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

STRATEGIES = ("all", "uniform", "hard")


def _stratum(row: dict, keys: list[str]) -> tuple:
    extra = row.get("extra_info") or {}
    return tuple(str(row.get(k, extra.get(k))) for k in keys)


def _random_key(row_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{row_id}".encode()).digest()[:8], "big")


def nested_order(rows: list[dict], stratify_by: list[str], seed: int) -> list[int]:
    """Indices of `rows` in an order whose every prefix is a stratified sample."""
    strata: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        strata.setdefault(_stratum(row, stratify_by), []).append(index)
    ranked = []
    for members in strata.values():
        members.sort(key=lambda i: _random_key(str((rows[i].get("extra_info") or {}).get("id", i)), seed))
        size = len(members)
        for position, index in enumerate(members):
            fraction = (position + 0.5) / size
            ranked.append((fraction, _random_key(f"tie{index}", seed), index))
    return [index for _, _, index in sorted(ranked)]


def select_rows(rows: list[dict], sampling: DictConfig, pass_rates: list[float] | None = None) -> list[dict]:
    """Apply the sampling option to already-loaded rows (pure; tested directly).

    `pass_rates`, aligned with `rows`, replaces `extra_info.<pass_rate_key>` for `hard`.
    """
    strategy = sampling.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"sampling.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "all":
        return rows
    if strategy == "hard":
        if pass_rates is None:
            pass_rates = annotated_pass_rates(rows, sampling)
        if pass_rates is None:
            key = sampling.get("pass_rate_key", "pass_rate")
            raise ValueError(f"sampling=hard needs extra_info.{key} on every row or a pass-rate table: "
                             "compute base-model pass rates with radgrpo-difficulty first")
        if len(pass_rates) != len(rows):
            raise ValueError(f"sampling=hard: {len(pass_rates)} pass rates for {len(rows)} rows")
        low, high = float(sampling.min_pass_rate), float(sampling.max_pass_rate)
        rows = [r for r, rate in zip(rows, pass_rates) if low <= float(rate) <= high]
    size = int(sampling.size)
    if size > len(rows):
        raise ValueError(f"sampling.size={size} but only {len(rows)} rows are eligible ({strategy})")
    order = nested_order(rows, list(sampling.stratify_by or []), int(sampling.seed))
    return [rows[i] for i in order[:size]]


def annotated_pass_rates(rows: list[dict], sampling: DictConfig) -> list[float] | None:
    """`extra_info.<pass_rate_key>` of every row, or None when some row lacks it."""
    key = sampling.get("pass_rate_key", "pass_rate")
    rates = [(r.get("extra_info") or {}).get(key) for r in rows]
    return None if any(rate is None for rate in rates) else [float(rate) for rate in rates]


def row_ids(rows: list[dict]) -> list:
    return [(r.get("extra_info") or {}).get("id") for r in rows]


PassRateLoader = Callable[[list[str], list[dict]], list[float]]


def apply_sampling(sampling: DictConfig, train_files: list[str], data_dir: Path, materialise: bool = True,
                   pass_rates: PassRateLoader | None = None) -> list[str]:
    """Write the run's training subset into `data_dir` (the run folder's data/) and return its path (or
    the inputs for `all`); with materialise=False only check it and name the path.

    `pass_rates(train_files, rows)` supplies the pass rates of `hard` when the rows carry none (see
    radgrpo.difficulty.cached_pass_rates); it raises ValueError saying how to produce them.
    """
    if sampling.strategy not in STRATEGIES:
        raise ValueError(f"sampling.strategy must be one of {', '.join(STRATEGIES)}, got {sampling.strategy!r}")
    ids_file = data_dir / "train_ids.json"
    if sampling.strategy == "all":
        if materialise:
            _write_ids(ids_file, [i for f in train_files for i in _file_ids(f)])
        return train_files
    target = data_dir / f"train_{sampling.strategy}_{sampling.size}_seed{sampling.seed}.parquet"
    if not materialise:
        existing = [f for f in train_files if Path(f).is_file()]
        available = sum(pq.ParquetFile(f).metadata.num_rows for f in existing)
        if existing and len(existing) == len(train_files) and int(sampling.size) > available:
            raise ValueError(f"sampling.size={sampling.size} but the training files hold only {available} rows")
        return [str(target)]
    rows = pa.concat_tables([pq.read_table(f) for f in train_files], promote_options="default").to_pylist()
    rates = None
    if sampling.strategy == "hard" and annotated_pass_rates(rows, sampling) is None and pass_rates is not None:
        rates = pass_rates(train_files, rows)
    chosen = select_rows(rows, sampling, rates)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(chosen), target)
    _write_ids(ids_file, row_ids(chosen))
    return [str(target)]


def _file_ids(path: str) -> list:
    """`extra_info.id` of every row of one parquet file, reading that column only (None without one)."""
    if "extra_info" not in pq.ParquetFile(path).schema_arrow.names:
        return [None] * pq.ParquetFile(path).metadata.num_rows
    return row_ids(pq.read_table(path, columns=["extra_info"]).to_pylist())


def _write_ids(path: Path, ids: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids))
