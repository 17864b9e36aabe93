"""Seed statistics per (data size, sampling strategy): mean, sd and a bootstrap confidence interval.

The sweep's question is whether one strategy beats the other at a given size beyond seed noise. With
3 seeds a t-interval leans on normality it cannot check; the percentile bootstrap of the mean over
seeds (RadVLM-GRPO bootstraps its evaluation the same way) makes no such assumption, and is seeded
so the same runs always give the same table.
"""

from __future__ import annotations

import math

import numpy as np

GROUP_KEYS = ("size", "strategy")


def bootstrap_ci(values: list[float], *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; a single value is its own interval."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summary_table(records: list[dict], metric: str, *, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """One row per (size, strategy) over the completed runs that logged `metric`: n seeds, the seeds,
    mean, sd (n - 1; NaN for one seed), the bootstrap CI, and how many runs of the group did not count."""
    column = f"final/{metric}"
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        groups.setdefault(tuple(record.get(k) for k in GROUP_KEYS), []).append(record)
    rows = []
    for (size, strategy), members in sorted(groups.items(), key=lambda item: (_sortable(item[0][0]), str(item[0][1]))):
        counted = [r for r in members if r["status"] == "completed" and r.get(column) is not None]
        values = [float(r[column]) for r in counted]
        low, high = bootstrap_ci(values, resamples=resamples, seed=seed)
        rows.append({
            "size": size, "strategy": strategy, "n": len(values),
            "seeds": ",".join(str(r.get("seed")) for r in counted),
            "mean": float(np.mean(values)) if values else math.nan,
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
            "ci_low": low, "ci_high": high, "not_counted": len(members) - len(counted),
        })
    return rows


def _sortable(value):
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def markdown_table(rows: list[dict], metric: str) -> str:
    """The summary table as Markdown (what the CLI prints)."""
    head = f"| size | strategy | n | mean {metric} | sd | 95% bootstrap CI | not counted |"
    lines = [head, "|---:|---|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['strategy']} | {r['n']} | {_fmt(r['mean'])} | {_fmt(r['sd'])} | "
                     f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] | {r['not_counted']} |")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"
