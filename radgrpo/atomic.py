"""Replacing a file atomically: readers (a resumed job, a concurrent report) see the old or the new
file, never a half-written one. Used by prep's image cache, radgrpo-difficulty and radgrpo-eval."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` into a unique hidden file beside `path`, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    write(tmp)
    os.replace(tmp, path)
