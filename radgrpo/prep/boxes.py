"""Bounding boxes out of RadVLM's free-text answers, validated as ground truth.

RadVLM answers say "... located at the coordinates [0.12, 0.3, 0.45, 0.61] and [...]", boxes
normalised to [0, 1], or a "no finding" sentence. The grammar (what a number, a box and a "no
finding" statement are) is `radgrpo.data.answers`, shared with the rewards; here every bracketed
list of numbers is read and checked, so that a bracket with three or five numbers, percentages or
values outside [0, 1] are reported under their reason instead of silently skipped.

These run once per record of a 1.1M-record file, so they avoid regex work where a substring test
answers: no '[' means no box.
"""

from __future__ import annotations

import re

from radgrpo.data.answers import BRACKET_PATTERN
from radgrpo.prep.errors import Drop

_BRACKET = re.compile(BRACKET_PATTERN)


def extract_boxes(text: str) -> list[list[float]]:
    """All `[x1, y1, x2, y2]` boxes in `text`, validated; raises Drop with the first problem."""
    if "[" not in text:
        return []
    boxes = []
    for match in _BRACKET.finditer(text):
        if "%" in match.group():
            raise Drop("box_malformed", f"{match.group()} is in percent; ground truth boxes are normalised to [0, 1]")
        coords = [float(v) for v in match.group()[1:-1].split(",")]
        if len(coords) != 4:
            raise Drop("box_malformed", f"{match.group()} has {len(coords)} numbers, not 4")
        x1, y1, x2, y2 = coords
        if not (0.0 <= x1 <= 1.0 and 0.0 <= y1 <= 1.0 and 0.0 <= x2 <= 1.0 and 0.0 <= y2 <= 1.0):
            raise Drop("box_out_of_range", f"{match.group()} is not normalised to [0, 1]")
        if x2 < x1 or y2 < y1:
            raise Drop("box_inverted", f"{match.group()} has x2 < x1 or y2 < y1")
        if x2 == x1 or y2 == y1:
            raise Drop("box_empty", f"{match.group()} has zero area; the iou reward gives any answer 0")
        boxes.append(coords)
    return boxes


def has_boxes(text: str) -> bool:
    """True if `text` holds at least one bracketed list of numbers."""
    return "[" in text and _BRACKET.search(text) is not None
