"""A run folder's layout, named once: every module that reads or writes a run's files asks here.

    radgrpo_config.yaml  the composed radgrpo config
    verl_config.yaml     the verl config it produced
    manifest.json        the prepared data's manifest (when the data has one)
    metrics.jsonl        one line per step: {"step": n, "data": {metric: value}}
                         (metrics.attempt<k>.jsonl: earlier attempts of a requeued run)
    checkpoints/         verl checkpoints (resume_mode=auto picks them up on a rerun)
    rollouts/            verl's per-step generations with every reward component (radgrpo.runs.retention)
    validation/          verl's validation generations (never pruned)
    train.log            everything verl and Ray printed (radgrpo.runs.console)
    data/                the sampled training subset (sampling other than `all`)
    ray/                 the multi-node Ray rendezvous (SLURM)
    slurm/               submitit's job logs
    summary.json         steps done, final metrics, wall time, where checkpoints are
    eval/<suite>/<step>/ radgrpo-eval's generations and eval_summary.json/.csv of this run's checkpoints
    export/              radgrpo-export's Hugging Face folders, one per exported step (default output)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    radgrpo_config = property(lambda self: self.root / "radgrpo_config.yaml")
    verl_config = property(lambda self: self.root / "verl_config.yaml")
    manifest = property(lambda self: self.root / "manifest.json")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    rollouts = property(lambda self: self.root / "rollouts")
    validation = property(lambda self: self.root / "validation")
    train_log = property(lambda self: self.root / "train.log")
    data = property(lambda self: self.root / "data")
    ray = property(lambda self: self.root / "ray")
    slurm = property(lambda self: self.root / "slurm")
    summary = property(lambda self: self.root / "summary.json")
    export = property(lambda self: self.root / "export")
    eval = property(lambda self: self.root / "eval")

    def earlier_metrics(self) -> list[Path]:
        """metrics.attempt<k>.jsonl of earlier attempts, oldest first."""
        return sorted(self.root.glob("metrics.attempt*.jsonl"),
                      key=lambda p: int(p.stem.removeprefix("metrics.attempt")))

    def latest_checkpointed_step(self) -> int | None:
        """The step of verl's latest checkpoint (where a rerun resumes), None before the first."""
        marker = self.checkpoints / "latest_checkpointed_iteration.txt"
        text = marker.read_text().strip() if marker.exists() else ""
        return int(text) if text else None

    def earlier_attempt_lines(self) -> list[dict]:
        """The metrics lines of every earlier attempt, oldest first."""
        return [line for path in self.earlier_metrics() for line in read_jsonl(path)]

    def keep_previous_metrics(self) -> None:
        """verl's file logger truncates its file; a resumed run (requeue) keeps the earlier lines aside."""
        if self.metrics.exists() and self.metrics.stat().st_size:
            self.metrics.rename(self.root / f"metrics.attempt{len(self.earlier_metrics()) + 1}.jsonl")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_metrics(run_dir: Path) -> list[dict]:
    """Every logged step of the run, earlier attempts first."""
    folder = RunFolder(Path(run_dir))
    return [line for path in [*folder.earlier_metrics(), folder.metrics] if path.exists() for line in read_jsonl(path)]
