"""Counts and statistics gathered while preparing, in constant memory, for manifest.json.

Every record read ends in exactly one bucket: kept (per split), dropped (malformed, per reason) or
filtered (fine but unwanted, per reason), so `read == kept + dropped + filtered` always holds and
nothing is lost silently. Length percentiles come from a fixed-size seeded reservoir sample.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from radgrpo.prep.errors import FILTERED, Drop

_RESERVOIR = 10_000
_EXAMPLES = 20


class _Summary:
    """min / max / mean plus reservoir percentiles of a stream of numbers."""

    def __init__(self, seed: int):
        self.n, self.total, self.lo, self.hi = 0, 0.0, None, None
        self.sample: list[float] = []
        self.rng = random.Random(seed)

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.lo = value if self.lo is None else min(self.lo, value)
        self.hi = value if self.hi is None else max(self.hi, value)
        if len(self.sample) < _RESERVOIR:
            self.sample.append(value)
        else:
            j = self.rng.randrange(self.n)
            if j < _RESERVOIR:
                self.sample[j] = value

    def to_dict(self) -> dict[str, Any]:
        if not self.n:
            return {"count": 0}
        ordered = sorted(self.sample)
        pct = {f"p{p}": ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] for p in (50, 95, 99)}
        return {"count": self.n, "min": self.lo, "max": self.hi, "mean": round(self.total / self.n, 4), **pct}


class PrepStats:
    def __init__(self, seed: int = 0):
        self.read = 0
        self.kept: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.filtered: Counter[str] = Counter()
        self.data_sources: Counter[str] = Counter()
        self.answer_types: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []   # first malformed records, for strict mode and users
        self.prompt_chars = _Summary(seed)
        self.prompt_tokens = _Summary(seed)
        self.images_per_row = Counter()
        self.boxes_per_row = Counter()
        self.box_width = _Summary(seed)
        self.box_height = _Summary(seed)

    def drop(self, drop: Drop, key: Any, rid: Any = None) -> None:
        self.read += 1
        if drop.reason in FILTERED:
            self.filtered[drop.reason] += 1
            return
        self.dropped[drop.reason] += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append({"record": key, "id": rid, "reason": drop.reason, "detail": drop.detail[:300]})

    def keep(self, split: str, dataset: str, answer_type: str, prompt_chars: int, n_images: int,
             boxes: list | None) -> None:
        self.read += 1
        self.kept[split] += 1
        self.data_sources[dataset] += 1
        self.answer_types[answer_type] += 1
        self.prompt_chars.add(prompt_chars)
        self.images_per_row[n_images] += 1
        if boxes is not None:
            self.boxes_per_row[len(boxes)] += 1
            for x1, y1, x2, y2 in boxes:
                self.box_width.add(round(x2 - x1, 6))
                self.box_height.add(round(y2 - y1, 6))

    @property
    def malformed(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> dict[str, Any]:
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
