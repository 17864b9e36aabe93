"""The report's figures as PNG files (matplotlib, no display needed).

Each function returns the data it drew, series by series, so tests (and anyone scripting the report)
can check a figure's content without reading pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def metric_vs_size(table: list[dict], records: list[dict], metric: str, path: Path) -> dict:
    """Headline metric against data size: one line per strategy (mean over seeds), its bootstrap band,
    and each seed's value as a dot. Returns {strategy: {size, mean, ci_low, ci_high, seed_points}}."""
    series: dict[str, dict] = {}
    column = f"final/{metric}"
    for row in table:
        if row["n"] == 0 or not isinstance(row["size"], (int, float)):
            continue
        s = series.setdefault(str(row["strategy"]), {"size": [], "mean": [], "ci_low": [], "ci_high": [],
                                                      "seed_points": []})
        s["size"].append(row["size"])
        s["mean"].append(row["mean"])
        s["ci_low"].append(row["ci_low"])
        s["ci_high"].append(row["ci_high"])
    for record in records:
        s = series.get(str(record.get("strategy")))
        if s is not None and record["status"] == "completed" and record.get(column) is not None:
            s["seed_points"].append((record["size"], float(record[column])))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for strategy, s in sorted(series.items()):
        line, = ax.plot(s["size"], s["mean"], marker="o", label=strategy)
        ax.fill_between(s["size"], s["ci_low"], s["ci_high"], color=line.get_color(), alpha=0.2)
        if s["seed_points"]:
            xs, ys = zip(*s["seed_points"])
            ax.scatter(xs, ys, color=line.get_color(), s=12, alpha=0.6)
    ax.set_xlabel("training rows (sampling.size)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs data size\n(mean over seeds, dots: seeds, band: 95% bootstrap CI)", fontsize=9)
    sizes = sorted({x for s in series.values() for x in s["size"]})
    if len(sizes) > 1 and sizes[0] > 0:
        ax.set_xscale("log")
    ax.set_xticks(sizes, [str(x) for x in sizes])
    ax.minorticks_off()
    if series:
        ax.legend(title="sampling")
    _save(fig, path)
    return series


def reward_curves(records: list[dict], path: Path) -> dict:
    """critic/score/mean per training step, one line per run. Returns {run: (steps, values)}."""
    drawn = {}
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for record in records:
        points = [(step, value) for step, value in record["reward_curve"] if value is not None and math.isfinite(value)]
        if not points:
            continue
        steps, values = (list(v) for v in zip(*points))
        ax.plot(steps, values, marker="o", markersize=3, label=record["run"])
        drawn[record["run"]] = (steps, values)
    ax.set_xlabel("training step")
    ax.set_ylabel("critic/score/mean (training reward)")
    ax.set_title("training reward per step, every run", fontsize=9)
    if drawn:
        ax.legend(fontsize=6, loc="best")
    _save(fig, path)
    return drawn


def _save(fig, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
