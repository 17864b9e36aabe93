"""Reading boxes out of model answers, and matching them to ground-truth boxes.

Models write boxes in several ways: `[x1, y1, x2, y2]` (seed 000, VLM-R1), inside JSON such as
`{"bbox_2d": [...]}`, as percentages, in pixels, or Qwen2-VL's
`<|box_start|>(x1,y1),(x2,y2)<|box_end|>` on a 0-1000 grid. The grammar of numbers and boxes is
`radgrpo.data.answers`, the one prep uses for ground truth. Everything is brought to radgrpo's
convention (`radgrpo.data.schema`): [x1, y1, x2, y2] normalised to [0, 1].

Several boxes are matched one-to-one with the Hungarian algorithm (`scipy.optimize.
linear_sum_assignment`), as RadVLM-GRPO's grounding reward does: greedy matching can miss the best
assignment (notes/rewards-and-metrics.md, "Matching").
"""

from __future__ import annotations

import re
from itertools import permutations
from math import isfinite
from typing import Sequence

from radgrpo.data.answers import BOX_PATTERN, POINT_PAIR_PATTERN

Box = tuple[float, float, float, float]

_BOX = re.compile(f"{BOX_PATTERN}|{POINT_PAIR_PATTERN}")  # [x1, y1, x2, y2] | (x1,y1),(x2,y2)
QWEN_BOX_TOKEN = "<|box_start|>"
COORDS = ("auto", "unit", "percent", "per_mille", "pixel")


def parse_boxes(
    text: str, coords: str = "auto", image_size: Sequence[float] | None = None, max_boxes: int = 100
) -> tuple[list[Box], int, str]:
    """Boxes in `text` as normalised, clipped, ordered tuples; also how many were written in total
    (a model that writes 10,000 boxes is charged for all of them, only the first `max_boxes` are
    matched) and a reason when boxes were written but could not be normalised.

    `coords` says how to read the numbers: `unit` (already 0-1), `percent`, `per_mille` (Qwen2-VL's
    0-1000 grid), `pixel` (divided by `image_size` = [width, height]) or `auto`: a `%` sign means
    percent, all values <= 1 means unit, Qwen box tokens mean per mille, else pixels when the image
    size is known.
    """
    matches = _BOX.findall(text)
    if not matches:
        return [], 0, ""
    percent = "%" in text and any(v.endswith("%") for groups in matches[:max_boxes] for v in groups)
    finite = []
    for groups in matches[:max_boxes]:
        numbers = groups[:4] if groups[0] else groups[4:]
        box = tuple(float(v.rstrip("%")) for v in numbers) if percent else tuple(map(float, numbers))
        if all(map(isfinite, box)):  # "1e999" reads as inf
            finite.append(box)
    if not finite:
        return [], len(matches), "box coordinates are not finite"
    mode = coords if coords != "auto" else _detect(finite, percent, QWEN_BOX_TOKEN in text)
    if mode == "pixel" and not _valid_size(image_size):
        return [], len(matches), "pixel box coordinates but no image size in extra_info or ground truth"
    sx, sy = _scales(mode, image_size)
    boxes = []
    for x1, y1, x2, y2 in finite:
        x1, x2 = sorted((_clip(x1 / sx), _clip(x2 / sx)))
        y1, y2 = sorted((_clip(y1 / sy), _clip(y2 / sy)))
        boxes.append((x1, y1, x2, y2))
    return boxes, len(matches), ""


def _detect(values: list[list[float]], percent: bool, qwen: bool) -> str:
    if percent:
        return "percent"
    top = max(max(box) for box in values)
    if top <= 1.0:
        return "unit"
    if qwen and top <= 1000.0:
        return "per_mille"
    return "pixel"


def _valid_size(size) -> bool:
    try:
        return len(size) == 2 and all(float(v) > 0 and float(v) < float("inf") for v in size)
    except (TypeError, ValueError):
        return False


def _scales(mode: str, image_size) -> tuple[float, float]:
    if mode == "percent":
        return 100.0, 100.0
    if mode == "per_mille":
        return 1000.0, 1000.0
    if mode == "pixel":
        return float(image_size[0]), float(image_size[1])
    return 1.0, 1.0


def _clip(v: float) -> float:
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two normalised boxes; 0 for degenerate (zero-area) pairs."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0.0 or ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0.0 else 0.0


def match_boxes(pred: Sequence[Box], gt: Sequence[Box]) -> list[float]:
    """IoUs of the one-to-one pred/gt pairs that maximise the total IoU (Hungarian)."""
    if not pred or not gt:
        return []
    if len(pred) == 1 or len(gt) == 1:  # the optimum is the single best pair; no solver needed
        return [max(iou(p, g) for p in pred for g in gt)]
    if len(pred) <= 3 and len(gt) <= 3:  # at most 6 assignments: cheaper to try them than to call scipy
        matrix = [[iou(p, g) for g in gt] for p in pred]
        if len(pred) > len(gt):
            matrix = [list(column) for column in zip(*matrix)]
        best = max(permutations(range(len(matrix[0])), len(matrix)), key=lambda cols: sum(r[c] for r, c in zip(matrix, cols)))
        return [row[c] for row, c in zip(matrix, best)]
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    p = np.asarray(pred, dtype=float)[:, None, :]
    g = np.asarray(gt, dtype=float)[None, :, :]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0.0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0.0, None)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    union = area_p + area_g - inter
    matrix = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    return [float(v) for v in matrix[rows, cols]]


def gt_boxes(gt: dict) -> list[Box] | None:
    """The ground truth's boxes as tuples, or None when the ground truth has no usable box list."""
    boxes = gt.get("boxes")
    if not isinstance(boxes, (list, tuple)):
        return None
    out = []
    for box in boxes:
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            return None
        out.append((x1, y1, x2, y2))
    return out
