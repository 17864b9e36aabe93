"""The run console's pieces: step lines, warning identity, failure line, rollout retention, and the
capture of a process's output into train.log."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radgrpo.runs.console import failure_message, step_line, warning_key
from radgrpo.runs.retention import prune_rollouts, steps_to_keep


def test_step_line_shows_reward_components_kl_grad_and_time():
    line = step_line(3, 10, {"actor/pg_loss": 0.1, "critic/score/mean": 0.25, "reward/iou/mean": 0.2,
                             "reward/iou/ratio/mean": 0.5, "actor/kl_loss": 1e-4, "actor/grad_norm": 0.31,
                             "timing_s/step": 2.345, "perf/mfu": 0.0})
    assert line == "step 3/10  reward 0.25 (iou 0.2, iou/ratio 0.5)  kl 0.0001  grad 0.31  2.3 s"
    assert step_line(0, None, {"val-core/synthetic/reward/mean@1": 0.5}) == "validation (step 0): reward/mean@1 0.5"
    assert step_line(1, 2, {"perf/mfu": 0}) is None


def test_repeated_warnings_have_one_key_whatever_process_time_or_count():
    a = "\x1b[36m(TaskRunnerV1 pid=12701)\x1b[0m WARNING:2026-12-01 04:28:34,499:target_num_threads 8 should not exceed"
    b = "(WorkerDict pid=9) WARNING:2026-12-01 05:00:00,001:target_num_threads 8 should not exceed [repeated 46x across cluster]"
    assert warning_key(a) == warning_key(b) is not None
    assert warning_key("(TaskRunnerV1 pid=1) step:1 - actor/pg_loss:0.1") is None


def test_failure_is_one_line_naming_the_error_and_the_log(tmp_path):
    exc = RuntimeError("ray::TaskRunner.run()\n  File x, line 3\nValueError: batch size 7 is not divisible by 4\n")
    line = failure_message(exc, tmp_path / "train.log")
    assert line == f"training failed: ValueError: batch size 7 is not divisible by 4; full log: {tmp_path / 'train.log'}"
    assert "\n" not in failure_message(KeyError("x"), tmp_path / "train.log")


def test_retention_keeps_every_nth_and_the_newest(tmp_path):
    assert steps_to_keep(list(range(1, 11)), 1, 3, last_step=10) == {8, 9, 10}
    assert steps_to_keep(list(range(1, 11)), 4, None, last_step=10) == {4, 8, 10}
    assert steps_to_keep(list(range(1, 8)), 4, 1, last_step=7) == {7}
    with pytest.raises(ValueError):
        steps_to_keep([], 0, None, last_step=None)
    rollouts = tmp_path / "rollouts"
    rollouts.mkdir()
    for step in range(1, 7):
        (rollouts / f"{step}.jsonl").write_text("{}\n")
    assert prune_rollouts(rollouts, every_n_steps=2, keep_last=2, last_step=6) == [1, 2, 3, 5]
    assert sorted(p.name for p in rollouts.iterdir()) == ["4.jsonl", "6.jsonl"]


@pytest.mark.parametrize("verbose", [False, True])
def test_capture_sends_child_process_output_to_train_log(tmp_path, verbose):
    """What subprocesses (Ray's workers) print lands in train.log; verbose shows it, warnings once."""
    script = (
        "import sys, subprocess\n"
        "from pathlib import Path\n"
        "from radgrpo.runs.console import RunConsole\n"
        f"with RunConsole(Path({str(tmp_path)!r}), verbose={verbose}) as console:\n"
        "    console.print('radgrpo: progress')\n"
        "    for _ in range(3):\n"
        "        subprocess.run([sys.executable, '-c', 'print(\"(W pid=1) WARNING: noisy\")'])\n"
        "    print('from the driver', flush=True)\n"
        "print('after')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60).stdout
    log = (tmp_path / "train.log").read_text()
    assert log.count("WARNING: noisy") == 3 and "from the driver" in log and "after" not in log
    if verbose:
        assert out.count("WARNING: noisy") == 1 and "from the driver" in out and "2 repeated warning" in out
    else:
        assert out.splitlines() == ["radgrpo: progress", "after"]
