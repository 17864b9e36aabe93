"""The one error type for mistakes a user can fix: each app (`radgrpo`, `radgrpo-prep`) catches it once
and prints its message as one `<app>: error: ...` line with exit status 2, no traceback.

Subclasses say where the mistake was found; their messages name the option to change.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user asked for; the message is one line naming what to fix."""


class ConfigError(UserError, ValueError):
    """The composed config is wrong (unknown option, missing value or file, bad verl key ...)."""


class SlurmRunError(UserError, RuntimeError):
    """SLURM refused the job, or the submitted run ended without a summary (the message names its log)."""
