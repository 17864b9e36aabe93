"""summary.json: what a run did, in one small file - the input of reports and of the SLURM launcher."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from radgrpo.runs.folder import RunFolder, load_metrics, read_jsonl

# Metrics worth a line in the summary and on the console, in verl 0.9.1's names.
HEADLINE_METRICS = (
    "critic/score/mean",
    "critic/rewards/mean",
    "actor/pg_loss",
    "actor/grad_norm",
    "actor/kl_loss",
    "training/rollout_probs_diff_mean",
    "response_length/mean",
)


def _finite_or_none(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def latest_checkpoint(folder: RunFolder) -> str | None:
    step = folder.latest_checkpointed_step()
    return None if step is None else str(folder.checkpoints / f"global_step_{step}")


def _train_steps(steps: list[dict]) -> list[dict]:
    return [s for s in steps if any(k.startswith("actor/") for k in s["data"])]


def build_summary(run_dir: Path, steps: list[dict], *, wall_time_s: float, error: str | None,
                  this_attempt: list[dict] | None = None, attempts: int = 1) -> dict:
    """`steps` holds every attempt's metrics (a requeued run resumes); `this_attempt` the latest's."""
    folder = RunFolder(Path(run_dir))
    final = steps[-1]["data"] if steps else {}
    train_steps = _train_steps(steps)
    latest = _train_steps(this_attempt if this_attempt is not None else steps)
    return {
        "status": "failed" if error else "completed",
        "error": error,
        "steps_completed": max((int(s["step"]) for s in train_steps), default=0),
        # first step trained by this attempt: checkpointed step + 1 after a resume
        "first_step": min((int(s["step"]) for s in latest), default=None),
        "attempts": attempts,
        "wall_time_s": round(wall_time_s, 2),
        "final_metrics": {k: _finite_or_none(final.get(k)) for k in HEADLINE_METRICS if k in final},
        "reward_mean_per_step": [_finite_or_none(s["data"].get("critic/score/mean")) for s in train_steps],
        "run_dir": str(run_dir),
        "metrics_file": str(folder.metrics),
        "checkpoint_dir": str(folder.checkpoints),
        "latest_checkpoint": latest_checkpoint(folder),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_summary(plan, *, started: float, error: str | None) -> dict:
    folder = RunFolder(plan.run_dir)
    summary = build_summary(plan.run_dir, load_metrics(plan.run_dir), wall_time_s=time.time() - started,
                            error=error, this_attempt=read_jsonl(folder.metrics) if folder.metrics.exists() else [],
                            attempts=1 + len(folder.earlier_metrics()))
    summary["device"] = plan.device
    summary["model_path"] = plan.model_path
    summary["train_files"] = plan.train_files
    folder.summary.write_text(json.dumps(summary, indent=2))
    return summary
