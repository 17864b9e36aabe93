"""summary.json over a resumed run: steps from every attempt, first step of the latest."""

import json

from radgrpo.runs.folder import load_metrics, read_jsonl
from radgrpo.runs.summary import build_summary


def write(path, steps):
    path.write_text("".join(json.dumps({"step": s, "data": {"actor/pg_loss": 0.1, "critic/score/mean": s / 10}}) + "\n"
                            for s in steps))


def test_resumed_run_summary(tmp_path):
    write(tmp_path / "metrics.attempt1.jsonl", [1, 2])
    write(tmp_path / "metrics.jsonl", [3, 4, 5, 6])
    summary = build_summary(tmp_path, load_metrics(tmp_path), wall_time_s=1.0, error=None,
                            this_attempt=read_jsonl(tmp_path / "metrics.jsonl"), attempts=2)
    assert summary["steps_completed"] == 6 and summary["first_step"] == 3 and summary["attempts"] == 2
    assert summary["reward_mean_per_step"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert summary["status"] == "completed"


def test_failed_run_summary_keeps_the_error(tmp_path):
    summary = build_summary(tmp_path, [], wall_time_s=1.0, error="RuntimeError: boom")
    assert summary["status"] == "failed" and summary["error"] == "RuntimeError: boom"
    assert summary["steps_completed"] == 0 and summary["first_step"] is None
