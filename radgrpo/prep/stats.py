"""Counts and statistics gathered while preparing, in constant memory, for manifest.json.

Every record read ends in exactly one bucket: kept (per split), dropped (malformed, per reason) or
filtered (fine but unwanted, per reason), so `read == kept + dropped + filtered` always holds and
nothing is lost silently. Length and box-size statistics are fixed-size histograms.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from radgrpo.prep.errors import FILTERED, Drop

_EXAMPLES = 20


class _Histogram:
    """count / min / max / mean and percentiles of a stream of numbers, in fixed memory.

    Values are binned (`width` per bin over [0, bins * width), the last bin open-ended), so
    percentiles are exact to one bin width. Adding a list at a time keeps the per-record cost at a
    list append; the binning runs in numpy once per batch.
    """

    def __init__(self, width: float, bins: int):
        self.width, self.counts = width, np.zeros(bins, dtype=np.int64)
        self.n, self.total, self.lo, self.hi = 0, 0.0, float("inf"), float("-inf")

    def add_many(self, values) -> None:
        if len(values) == 0:
            return
        arr = np.asarray(values, dtype=np.float64)
        self.n += arr.size
        self.total += float(arr.sum())
        self.lo, self.hi = min(self.lo, float(arr.min())), max(self.hi, float(arr.max()))
        idx = np.minimum((arr / self.width).astype(np.int64), self.counts.size - 1)
        self.counts += np.bincount(np.maximum(idx, 0), minlength=self.counts.size)

    def to_dict(self) -> dict[str, Any]:
        if not self.n:
            return {"count": 0}
        cumulative = np.cumsum(self.counts)
        pct = {f"p{p}": round(min(self.hi, (int(np.searchsorted(cumulative, self.n * p / 100)) + 1) * self.width), 6)
               for p in (50, 95, 99)}
        return {"count": self.n, "min": self.lo, "max": self.hi, "mean": round(self.total / self.n, 4), **pct}


class PrepStats:
    def __init__(self):
        self.read = 0
        self.kept: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.filtered: Counter[str] = Counter()
        self.data_sources: Counter[str] = Counter()
        self.answer_types: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []   # first malformed records, for strict mode and users
        self.prompt_chars = _Histogram(width=16, bins=4096)     # characters, exact to 16
        self.prompt_tokens = _Histogram(width=8, bins=4096)     # tokens, exact to 8
        self.box_width = _Histogram(width=0.001, bins=1001)     # normalised units
        self.box_height = _Histogram(width=0.001, bins=1001)
        self.images_per_row: Counter[int] = Counter()
        self.boxes_per_row: Counter[int] = Counter()
        self._pending: dict[str, list[float]] = {"tokens": []}
        self._kept_rows: list[tuple] = []

    def drop(self, drop: Drop, key: Any, rid: Any = None) -> None:
        self.read += 1
        if drop.reason in FILTERED:
            self.filtered[drop.reason] += 1
            return
        self.dropped[drop.reason] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"record": key, "id": rid, "reason": drop.reason, "detail": drop.detail[:300]})

    def filtered_out(self, reason: str, count: int = 1) -> None:
        """Count records filtered by `reason` (the fast path's Drop-free form of `drop`)."""
        if count:
            self.read += count
            self.filtered[reason] += count

    def keep(self, split: str, dataset: str, answer_type: str, prompt_chars: int, n_images: int,
             boxes: list | None) -> None:
        """Count a kept row (queued as one tuple; `flush` aggregates the batch in C)."""
        self._kept_rows.append((split, dataset, answer_type, prompt_chars, n_images, boxes))

    def keep_many(self, splits, datasets, answer_types, prompt_chars, boxes_per_row, widths, heights) -> None:
        """Count rows kept by the vectorised path: one image each, arrays of per-row values and of
        per-box widths and heights."""
        if len(splits) == 0:
            return
        self.read += len(splits)
        self.kept.update(splits.tolist())
        self.data_sources.update(datasets.tolist())
        self.answer_types.update(answer_types.tolist())
        self.images_per_row[1] += len(splits)
        self.prompt_chars.add_many(prompt_chars)
        self.boxes_per_row.update(boxes_per_row.tolist())
        self.box_width.add_many(widths)
        self.box_height.add_many(heights)

    def tokens(self, count: int) -> None:
        self._pending["tokens"].append(count)

    def flush(self) -> None:
        """Aggregate the rows kept since the last flush (call once per batch)."""
        self.prompt_tokens.add_many(self._pending["tokens"])
        self._pending["tokens"] = []
        if not self._kept_rows:
            return
        splits, datasets, answer_types, chars, n_images, boxes = zip(*self._kept_rows)
        self._kept_rows = []
        self.read += len(splits)
        self.kept.update(splits)
        self.data_sources.update(datasets)
        self.answer_types.update(answer_types)
        self.images_per_row.update(n_images)
        self.prompt_chars.add_many(chars)
        row_boxes = [b for b in boxes if b is not None]
        self.boxes_per_row.update(map(len, row_boxes))
        flat = [box for b in row_boxes for box in b]
        if flat:
            arr = np.asarray(flat, dtype=np.float64)
            self.box_width.add_many(arr[:, 2] - arr[:, 0])
            self.box_height.add_many(arr[:, 3] - arr[:, 1])

    @property
    def malformed(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
        self.flush()
        out = {
            "counts": {
                "read": self.read, "kept": dict(self.kept), "kept_total": sum(self.kept.values()),
                "dropped": dict(self.dropped), "filtered": dict(self.filtered),
            },
            "data_sources": dict(self.data_sources),
            "answer_types": dict(self.answer_types),
            "prompt_chars": self.prompt_chars.to_dict(),
            "images_per_row": {str(k): v for k, v in sorted(self.images_per_row.items())},
            "first_dropped": self.examples,
        }
        if self.prompt_tokens.n:
            out["prompt_tokens"] = self.prompt_tokens.to_dict()
        if self.boxes_per_row:
            out["boxes"] = {
                "per_row": {str(k): v for k, v in sorted(self.boxes_per_row.items())},
                "no_finding_rows": self.boxes_per_row.get(0, 0),
                "total": sum(k * v for k, v in self.boxes_per_row.items()),
                "width": self.box_width.to_dict(), "height": self.box_height.to_dict(),
            }
        return out
