"""The one place that says what a prepared row's ground truth looks like, per task.

verl hands `reward_model["ground_truth"]` to the reward function untouched. radgrpo stores it as a
JSON string so that one parquet schema holds every task (a grounding row and a report row can share
a file) and so that nested boxes survive parquet round trips exactly. Rewards call
`decode_ground_truth`, which also accepts already-decoded values, so hand-written tests and other
people's parquet files (a bare list of boxes, a bare answer string) work too.

Ground truth per task (the `task` key is always present after decoding):
- grounding:      {"task": "grounding", "boxes": [[x1, y1, x2, y2], ...]}   boxes normalised to [0, 1],
                  x1 <= x2, y1 <= y2; [] means "no finding". Optional "labels": [str per box],
                  "phrase": str (phrase grounding), "image_size": [width, height] in pixels.
- report:         {"task": "report", "report": str}
- classification: {"task": "classification", "labels": [str, ...]}   ([] means "no finding")
- mcqa:           {"task": "mcqa", "label": "B", "answer": str, "options": {"A": str, ...},
                   optional "explanation": str, "evidence": str (e.g. the report findings)}
- vqa:            {"task": "vqa", "answer": str, optional "reasoning": str}
- conversation:   {"task": "conversation", "answer": str}
"""

from __future__ import annotations

import json
from typing import Any

TASKS = ("grounding", "report", "classification", "mcqa", "vqa", "conversation")

# verl's `ability` column carries the task name so dashboards can split metrics by task.
ABILITY_BY_TASK = {task: task for task in TASKS}


def encode_ground_truth(task: str, **fields: Any) -> str:
    """Serialise one row's ground truth; raises ValueError on an unknown task or a bad box."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if task == "grounding":
        fields["boxes"] = [validate_box(b) for b in fields.get("boxes", [])]
    return json.dumps({"task": task, **fields}, ensure_ascii=False, sort_keys=True)


def decode_ground_truth(ground_truth: Any) -> dict:
    """Parse a ground truth into a dict with a `task` key; never raises.

    Accepts the JSON string radgrpo writes, a dict, a bare list of boxes (seed 000's IoU files) or a
    bare string answer. Unparseable input comes back as {"task": "unknown", "raw": ...}.
    """
    value = ground_truth
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                value = json.loads(stripped)
            except (ValueError, RecursionError):
                return {"task": "unknown", "raw": value}
        else:
            return {"task": "vqa", "answer": value}
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if isinstance(value, dict):
        out = dict(value)
        out.setdefault("task", "grounding" if "boxes" in out else "unknown")
        return out
    if isinstance(value, (list, tuple)):
        boxes = [list(b) for b in value if isinstance(b, (list, tuple)) and len(b) == 4]
        if len(boxes) == len(value):
            return {"task": "grounding", "boxes": boxes}
    return {"task": "unknown", "raw": value}


def validate_box(box: Any) -> list[float]:
    """Return the box as four floats in [0, 1] with x1 <= x2 and y1 <= y2, else raise ValueError."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise ValueError(f"box must be [x1, y1, x2, y2], got {box!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"box has a non-numeric coordinate: {box!r}") from exc
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)):
        raise ValueError(f"box coordinates must be normalised to [0, 1]: {box!r}")
    if x2 < x1 or y2 < y1:
        raise ValueError(f"box must have x1 <= x2 and y1 <= y2: {box!r}")
    return [x1, y1, x2, y2]
