"""What the run trained on, for the wandb summary: the training subset's size and its make-up.

A data-size x sampling-strategy sweep is read by comparing runs, so each run reports the rows it
trained on, their counts per stratification key (`sampling.stratify_by`, else data source and
task) and, when the rows carry one (`sampling=hard`), the base-model pass rate's mean, min and max.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

MAX_VALUES_PER_KEY = 50  # wandb summary stays small for keys with many values


def subset_statistics(train_files: list[str], sampling: Any) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(f) for f in train_files]
    rows = pa.concat_tables(tables, promote_options="default").to_pylist() if tables else []
    keys = list(sampling.get("stratify_by") or []) or ["data_source", "ability"]
    stats: dict = {"strategy": str(sampling.get("strategy")), "rows": len(rows), "files": len(train_files)}
    for key in keys:
        counts = Counter(str(r.get(key, (r.get("extra_info") or {}).get(key))) for r in rows)
        stats[f"rows_by_{key}"] = dict(counts.most_common(MAX_VALUES_PER_KEY))
    rate_key = str(sampling.get("pass_rate_key") or "pass_rate")
    rates = [float(v) for r in rows if (v := (r.get("extra_info") or {}).get(rate_key)) is not None]
    if rates:
        stats["pass_rate"] = {"mean": sum(rates) / len(rates), "min": min(rates), "max": max(rates)}
    return stats
