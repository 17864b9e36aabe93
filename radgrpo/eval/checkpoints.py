"""Which checkpoints of a training run to evaluate, as Hugging Face folders.

verl saves `<run folder>/checkpoints/global_step_<N>/actor/...`; `radgrpo-export` turns one into a
Hugging Face folder (weights, processor, chat template). Evaluation asks for `latest`, `all` or a step
number and gets one exported folder per step, exported once and reused (`<step>/exported/`).
"""

from __future__ import annotations

import re
from pathlib import Path

from radgrpo.errors import ConfigError

_STEP = re.compile(r"global_step_(\d+)$")


def saved_steps(run_dir: Path) -> dict[int, Path]:
    """{step: checkpoint folder} of a run, from its `checkpoints/global_step_N` folders."""
    folder = run_dir / "checkpoints"
    steps = {}
    for child in folder.glob("global_step_*") if folder.is_dir() else ():
        match = _STEP.search(child.name)
        if match and child.is_dir():
            steps[int(match.group(1))] = child
    return steps


def select_steps(steps: dict[int, Path], which: str) -> list[int]:
    """`latest` -> the newest step, `all` -> every step, `N` -> that step; one-line error otherwise."""
    if not steps:
        raise ConfigError("the run has no checkpoints (checkpoints/global_step_N); train with "
                          "verl.trainer.save_freq=<steps> to save some")
    if which == "latest":
        return [max(steps)]
    if which == "all":
        return sorted(steps)
    if which.isdigit() and int(which) in steps:
        return [int(which)]
    raise ConfigError(f"step={which!r}: use latest, all or one of the saved steps {sorted(steps)}")


def run_and_steps(folder: Path, which: str) -> tuple[Path, dict[int, Path], list[int]]:
    """The run folder and chosen steps for a run folder or one `global_step_N` folder."""
    match = _STEP.search(folder.name)
    if match:
        run_dir = folder.parent.parent
        return run_dir, {int(match.group(1)): folder}, [int(match.group(1))]
    if not (folder / "checkpoints").is_dir():
        raise ConfigError(f"checkpoint={folder}: not a Hugging Face folder (no config.json), a run folder "
                          "(no checkpoints/) or a checkpoints/global_step_N folder")
    steps = saved_steps(folder)
    return folder, steps, select_steps(steps, which)


def exported_checkpoints(folder: Path, which: str) -> list[tuple[Path, str, Path]]:
    """(run folder, step label, Hugging Face folder) per chosen step, exporting those not yet exported."""
    from radgrpo.export import export_checkpoint

    run_dir, steps, chosen = run_and_steps(folder, which)
    out = []
    for step in chosen:
        target = run_dir / "eval" / "exported" / f"global_step_{step}"
        if not (target / "config.json").is_file():
            export_checkpoint(steps[step], target)
        out.append((run_dir, f"global_step_{step}", target))
    return out
