"""Record which processes ran a vision tower, on how many image tokens, and what shapes met in a batch.

A VLM fed image placeholder tokens but no pixels does not always fail: it may embed the placeholders
as text and train on nonsense. So "images reached the rollout and the actor" has to be observed, not
inferred. With `RADGRPO_TRACE_VISION=<folder>` set (radgrpo forwards it to every Ray process), these
events are appended as JSON lines to `<folder>/<pid>.jsonl`, each with the Ray process title:
- `vision`: a forward of the active family's vision tower (`patches`: size of its first input's dim 0);
- `forward`: a forward of the full model given pixels (`image_tokens`: placeholders in `input_ids`,
  `rows`: per row - rows of two aspect ratios show two counts for families whose count depends on it);
- `merge`: a micro-batch's multimodal inputs merged for the actor (`shapes`: per-sample shapes and
  image sizes, see radgrpo.engine.family_hooks).
The integration tests read them. Unset, nothing is wrapped or written.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from pathlib import Path

ENV = "RADGRPO_TRACE_VISION"


def _process_title() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def record(kind: str, **fields) -> None:
    """Append one event (no-op unless tracing)."""
    folder = os.environ.get(ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    with (Path(folder) / f"{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps({"kind": kind, "process": _process_title(), **fields}) + "\n")


def _wrap(cls, make_event) -> None:
    forward = cls.forward
    if getattr(forward, "_radgrpo_traced", False):
        return

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        event = make_event(self, args, kwargs)
        if event is not None:
            record(**event)
        return forward(self, *args, **kwargs)

    wrapper._radgrpo_traced = True
    cls.forward = wrapper


def install(family) -> None:
    """Trace `family`'s vision tower and full-model forwards (only when RADGRPO_TRACE_VISION is set)."""
    if not enabled() or family is None:
        return
    module, name = family.vision_tower
    tower = getattr(importlib.import_module(module), name)

    def tower_event(_self, args, kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        return {"kind": "vision", "patches": int(first.shape[0])}

    _wrap(tower, tower_event)
    import transformers

    def forward_event(self, args, kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is None or not any(k.endswith("pixel_values") and v is not None for k, v in kwargs.items()):
            return None
        per_row = (input_ids == family.config_image_token_id(self.config)).sum(dim=-1).reshape(-1).tolist()
        return {"kind": "forward", "image_tokens": int(sum(per_row)), "rows": per_row}

    model_cls = getattr(transformers, family.model_class)
    _wrap(model_cls, forward_event)


def read_trace(folder: Path, kind: str | None = None) -> list[dict]:
    events = [json.loads(line) for path in Path(folder).glob("*.jsonl") for line in path.read_text().splitlines()]
    return [e for e in events if kind is None or e["kind"] == kind]
