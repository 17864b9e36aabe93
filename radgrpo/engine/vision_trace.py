"""Record which processes ran a vision tower, and on how many image patches.

A Qwen-VL model fed image placeholder tokens but no pixels does not fail: it embeds the
placeholders as text and trains on nonsense. So "images reached the rollout and the actor" has to be
observed, not inferred. With `RADGRPO_TRACE_VISION=<folder>` set (radgrpo forwards it to every Ray
process), every vision-tower forward appends `{"process": <Ray process title>, "patches": n}` to
`<folder>/<pid>.jsonl`. The integration tests read it to check that both the rollout server and
the training workers encoded images. Unset, nothing is wrapped.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

ENV = "RADGRPO_TRACE_VISION"


def _process_title() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _traced(forward, folder: Path):
    @functools.wraps(forward)
    def wrapper(self, hidden_states, *args, **kwargs):
        with (folder / f"{os.getpid()}.jsonl").open("a") as out:
            out.write(json.dumps({"process": _process_title(), "patches": int(hidden_states.shape[0])}) + "\n")
        return forward(self, hidden_states, *args, **kwargs)

    return wrapper


def install() -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    tower = modeling_qwen2_5_vl.Qwen2_5_VisionTransformerPretrainedModel
    if not getattr(tower.forward, "_radgrpo_traced", False):
        Path(folder).mkdir(parents=True, exist_ok=True)
        tower.forward = _traced(tower.forward, Path(folder))
        tower.forward._radgrpo_traced = True


def read_trace(folder: Path) -> list[dict]:
    return [json.loads(line) for path in Path(folder).glob("*.jsonl") for line in path.read_text().splitlines()]
