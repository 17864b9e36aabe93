"""Bounding boxes out of free-text answers, the way RadVLM writes them.

RadVLM answers say "... located at the coordinates [0.12, 0.3, 0.45, 0.61] and [...]", boxes
normalised to [0, 1], or a "no finding" sentence. Any bracketed list of numbers is read, so that a
bracket with three or five numbers is reported as malformed instead of silently skipped.
"""

from __future__ import annotations

import re

from radgrpo.prep.errors import Drop

_NUM = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BRACKET = re.compile(rf"\[\s*{_NUM}(?:\s*,\s*{_NUM})*\s*\]")
_NUMBER = re.compile(_NUM)
NO_FINDING = re.compile(
    r"(\bno\b|\bnot\b|n't\b|\bnone\b|\bwithout\b|\bfree of\b|\bclear of\b|\babsence of\b)[^.]{0,60}?"
    r"\b(abnormalit|lesion|finding|object|sign|evidence|patholog|opacit)",
    re.IGNORECASE,
)


def extract_boxes(text: str) -> list[list[float]]:
    """All `[x1, y1, x2, y2]` boxes in `text`, validated; raises Drop with the first problem."""
    boxes = []
    for match in _BRACKET.finditer(text):
        coords = [float(v) for v in _NUMBER.findall(match.group())]
        if len(coords) != 4:
            raise Drop("box_malformed", f"{match.group()} has {len(coords)} numbers, not 4")
        if not all(0.0 <= c <= 1.0 for c in coords):
            raise Drop("box_out_of_range", f"{match.group()} is not normalised to [0, 1]")
        x1, y1, x2, y2 = coords
        if x2 < x1 or y2 < y1:
            raise Drop("box_inverted", f"{match.group()} has x2 < x1 or y2 < y1")
        boxes.append(coords)
    return boxes


def has_boxes(text: str) -> bool:
    """True if `text` holds at least one bracketed list of numbers (cheap pre-check)."""
    return _BRACKET.search(text) is not None


def says_no_finding(text: str) -> bool:
    """True if the answer states that nothing was found."""
    return NO_FINDING.search(text) is not None
