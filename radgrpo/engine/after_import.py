"""Patch a verl module right after it is first imported, without importing it early.

radgrpo's hooks into verl's trainer must run in the process that runs the trainer (radgrpo's own
process: radgrpo.engine.runner), but importing the trainer module from the plugin would cost every verl process ~10 s.
`when_imported(name, patch)` calls `patch(module)` at once if the module is already imported, else
right after it executes, through one import finder for all registered patches.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Callable

_PENDING: dict[str, list[Callable]] = {}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds a registered module through the normal finders and patches it once it has executed."""

    def find_spec(self, name, path=None, target=None):
        if name not in _PENDING:
            return None
        patches = _PENDING.pop(name)
        if not _PENDING and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            for patch in patches:
                patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


_FINDER = _PatchAfterImport()


def when_imported(name: str, patch: Callable) -> None:
    """Run `patch(module)` now if `name` is imported, else right after its first import."""
    if name in sys.modules:
        patch(sys.modules[name])
        return
    _PENDING.setdefault(name, []).append(patch)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
