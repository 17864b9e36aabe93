"""How many per-step rollout dumps a run keeps: verl writes `rollouts/<step>.jsonl` every step, which
grows without bound on long runs.

`logger.rollouts.every_n_steps` keeps the dumps of every N-th step (and of the run's last step),
`logger.rollouts.keep_last` keeps only the newest K of those (null: all). Validation dumps are
written to `validation/` and never pruned. radgrpo prunes from the driver as steps complete
(radgrpo.runs.console follows the run), so verl needs no patch; a dump may exist briefly before it
is pruned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def dump_steps(rollout_dir: Path) -> list[int]:
    return sorted(int(p.stem) for p in Path(rollout_dir).glob("*.jsonl") if p.stem.isdigit())


def steps_to_keep(steps: list[int], every_n_steps: int, keep_last: Optional[int], last_step: Optional[int]) -> set[int]:
    """The steps whose dumps stay: multiples of `every_n_steps` (plus `last_step`), the newest
    `keep_last` of them."""
    if every_n_steps < 1:
        raise ValueError(f"logger.rollouts.every_n_steps must be >= 1, got {every_n_steps}")
    kept = sorted(s for s in steps if s % every_n_steps == 0 or s == last_step)
    if keep_last is not None:
        if keep_last < 0:
            raise ValueError(f"logger.rollouts.keep_last must be >= 0 or null, got {keep_last}")
        kept = kept[len(kept) - keep_last:] if keep_last else []
    return set(kept)


def prune_rollouts(rollout_dir: Path, every_n_steps: int = 1, keep_last: Optional[int] = None,
                   last_step: Optional[int] = None) -> list[int]:
    """Delete the dumps `steps_to_keep` rejects; returns the deleted steps."""
    steps = dump_steps(rollout_dir)
    keep = steps_to_keep(steps, every_n_steps, keep_last, last_step)
    deleted = [s for s in steps if s not in keep]
    for step in deleted:
        (Path(rollout_dir) / f"{step}.jsonl").unlink(missing_ok=True)
    return deleted
