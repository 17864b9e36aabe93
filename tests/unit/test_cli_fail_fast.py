"""Mistakes on the command line fail in seconds with one line naming what to fix, and start no Ray."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ..conftest import REPO

RADGRPO = [sys.executable, "-m", "radgrpo.cli.train"]


def run_cli(*args, env_outputs):
    started = time.monotonic()
    result = subprocess.run([*RADGRPO, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "RADGRPO_OUTPUTS": str(env_outputs)})
    return result, time.monotonic() - started


@pytest.mark.parametrize("args,expected,max_seconds", [
    (["model=does_not_exist"], "radgrpo: error: unknown model option 'does_not_exist'; available: ", 10),
    (["data.train_files=/nope.parquet"], "radgrpo: error: data.train_files: file not found: /nope.parquet", 10),
    (["reward=nonexistent_reward"], "radgrpo: error: unknown reward option 'nonexistent_reward'", 10),
    # checked against verl's composed config, so these take verl's import time (seconds, not minutes)
    (["verl.trainer.total_training_step=3"], "did you mean trainer.total_training_steps", 60),
    (["model=qwen2_5_vl_7b", "model.path=/nowhere/model"], "model.path does not exist: /nowhere/model", 60),
    (["model.family=nope"], "model.family 'nope' is unknown; known: gemma3, llava_onevision", 60),
])
def test_user_errors_fail_fast_with_one_line(args, expected, max_seconds, tmp_path):
    result, seconds = run_cli(*args, env_outputs=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("radgrpo: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert seconds < max_seconds
    assert "ray init" not in result.stdout + result.stderr  # verl prints this when it starts Ray


def test_dry_run_prints_the_verl_config_and_starts_nothing(tmp_path):
    result, _ = run_cli("dry_run=true", "verl.trainer.total_training_steps=5", env_outputs=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "total_training_steps: 5" in result.stdout
    assert "name: hf" in result.stdout and "(dry run: nothing started)" in result.stdout
    assert "ray init" not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("summary.json"))
