"""The one error type for mistakes a user can fix: each app (`radgrpo`, `radgrpo-prep`) catches it once
and prints its message as one `<app>: error: ...` line with exit status 2, no traceback.

Subclasses say where the mistake was found; their messages name the option to change.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """A mistake in what the user asked for; the message is one line naming what to fix."""


class ConfigError(UserError, ValueError):
    """The composed config is wrong (unknown option, missing value or file, bad verl key ...)."""


class SlurmRunError(UserError, RuntimeError):
    """SLURM refused the job, or the submitted run ended without a summary (the message names its log)."""


ERROR_LINE = re.compile(r"^([\w.]+(Error|Exception|Exit|Interrupt))(\([\w.]+\))?: \S")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def last_error_line(text: str) -> str:
    """The deepest ``SomeError: message`` line of a traceback (a Ray task error nests the real cause
    last), else the first non-empty line; ANSI colours removed, at most 300 characters."""
    lines = [ln.strip() for ln in ANSI_ESCAPE.sub("", text).splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        if ERROR_LINE.match(lines[i]):
            line = lines[i]
            if line.endswith(":") and i + 1 < len(lines):  # the message goes on below
                line = f"{line} {lines[i + 1]}"
            return line[:300]
    return (lines[0] if lines else "unknown error")[:300]
