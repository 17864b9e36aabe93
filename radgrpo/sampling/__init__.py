"""Training-data subsets for sweeps over data size and sampling strategy.

- `all`: every row.
- `uniform`: a seeded subset of `size` rows that keeps the proportions of the `stratify_by` keys
  (CheX-Phi4MM's uniform_sample, which never set a seed).
- `hard`: first keep the rows whose base-model pass rate lies in [min_pass_rate, max_pass_rate]
  (MedVLThinker keeps 1..7 correct of 16), then sample as `uniform`. The pass rate is read from
  `extra_info.<pass_rate_key>`, written by a pass-rate pass over the data; without it the run stops.

Subsets are nested: all sizes are prefixes of one seeded order, built by interleaving the strata
(each row's rank is its position within its stratum divided by the stratum size), so the
1000-row subset contains the 500-row one and size effects are not confounded with resampling
noise - unlike verl's `data.train_max_samples`, which draws a fresh subset per size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


def select_rows(rows: list[dict], sampling: DictConfig) -> list[dict]:
    """Apply the sampling option to already-loaded rows (pure; tested directly)."""
    strategy = sampling.strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"sampling.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "all":
        return rows
    if strategy == "hard":
        key = sampling.get("pass_rate_key", "pass_rate")
        missing = [r for r in rows if (r.get("extra_info") or {}).get(key) is None]
        if missing:
            raise ValueError(f"sampling=hard needs extra_info.{key} on every row ({len(missing)} of {len(rows)} "
                             "lack it): compute base-model pass rates first")
        low, high = float(sampling.min_pass_rate), float(sampling.max_pass_rate)
        rows = [r for r in rows if low <= float(r["extra_info"][key]) <= high]
    size = int(sampling.size)
    if size > len(rows):
        raise ValueError(f"sampling.size={size} but only {len(rows)} rows are eligible ({strategy})")
    order = nested_order(rows, list(sampling.stratify_by or []), int(sampling.seed))
    return [rows[i] for i in order[:size]]


def apply_sampling(sampling: DictConfig, train_files: list[str], data_dir: Path, materialise: bool = True) -> list[str]:
    """Write the run's training subset into `data_dir` (the run folder's data/) and return its path (or
    the inputs for `all`); with materialise=False only check it and name the path."""
    if sampling.strategy == "all":
        return train_files
    if sampling.strategy not in STRATEGIES:
        raise ValueError(f"sampling.strategy must be one of {', '.join(STRATEGIES)}, got {sampling.strategy!r}")
    target = data_dir / f"train_{sampling.strategy}_{sampling.size}_seed{sampling.seed}.parquet"
    if not materialise:
        existing = [f for f in train_files if Path(f).is_file()]
        available = sum(pq.ParquetFile(f).metadata.num_rows for f in existing)
        if existing and len(existing) == len(train_files) and int(sampling.size) > available:
            raise ValueError(f"sampling.size={sampling.size} but the training files hold only {available} rows")
        return [str(target)]
    rows = pa.concat_tables([pq.read_table(f) for f in train_files], promote_options="default").to_pylist()
    chosen = select_rows(rows, sampling)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(chosen), target)
    ids = [(r.get("extra_info") or {}).get("id") for r in chosen]
    target.with_suffix(".ids.json").write_text(json.dumps(ids))
    return [str(target)]
