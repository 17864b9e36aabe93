"""Bounding boxes out of free-text answers, the way RadVLM writes them.

RadVLM answers say "... located at the coordinates [0.12, 0.3, 0.45, 0.61] and [...]", boxes
normalised to [0, 1], or a "no finding" sentence. Any bracketed list of numbers is read, so that a
bracket with three or five numbers is reported as malformed instead of silently skipped.

These run once per record of a 1.1M-record file, so they avoid regex work where a substring test
answers: no '[' means no box, and the few "no finding" sentences RadVLM uses are memoised.
"""

from __future__ import annotations

import re
from functools import lru_cache

from radgrpo.prep.errors import Drop

# ASCII classes only, written out, so Python's re and arrow's RE2 (the fast path) read the pattern
# the same way: Python's \s and \d would also match Unicode spaces and digits, RE2's would not.
WS = r"[ \t\n\r\f]"
NUMBER = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
BRACKET_PATTERN = rf"\[{WS}*{NUMBER}(?:{WS}*,{WS}*{NUMBER})*{WS}*\]"
_BRACKET = re.compile(BRACKET_PATTERN)
_NEGATION = re.compile(r"\b(?:no|not|none|without|free of|clear of|absence of)\b|n't\b")
_NOUN = re.compile(r"abnormalit|lesion|finding|object|sign|evidence|patholog|opacit")


def extract_boxes(text: str) -> list[list[float]]:
    """All `[x1, y1, x2, y2]` boxes in `text`, validated; raises Drop with the first problem."""
    if "[" not in text:
        return []
    boxes = []
    for match in _BRACKET.finditer(text):
        coords = [float(v) for v in match.group()[1:-1].split(",")]
        if len(coords) != 4:
            raise Drop("box_malformed", f"{match.group()} has {len(coords)} numbers, not 4")
        x1, y1, x2, y2 = coords
        if not (0.0 <= x1 <= 1.0 and 0.0 <= y1 <= 1.0 and 0.0 <= x2 <= 1.0 and 0.0 <= y2 <= 1.0):
            raise Drop("box_out_of_range", f"{match.group()} is not normalised to [0, 1]")
        if x2 < x1 or y2 < y1:
            raise Drop("box_inverted", f"{match.group()} has x2 < x1 or y2 < y1")
        boxes.append(coords)
    return boxes


def has_boxes(text: str) -> bool:
    """True if `text` holds at least one bracketed list of numbers."""
    return "[" in text and _BRACKET.search(text) is not None


@lru_cache(maxsize=1 << 14)
def says_no_finding(text: str) -> bool:
    """True if the answer states that nothing was found ("No abnormalities are detected", ...):
    a negation followed, within the same sentence and 60 characters, by a finding noun."""
    low = text.lower()
    for neg in _NEGATION.finditer(low):
        window = low[neg.end(): neg.end() + 60].split(".", 1)[0]
        if _NOUN.search(window):
            return True
    return False
