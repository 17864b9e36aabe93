"""radgrpo-difficulty on CPU with the tiny model and synthetic data: SIGKILLed mid-way and resumed,
it writes the table an uninterrupted run writes; a second call is a cache hit."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from radgrpo.difficulty import KILL_AFTER_CHUNKS_ENV, EstimateSettings, cache_dir, cache_key, histogram

from ..conftest import REPO

ARGS = ["data.num_train=10", "data.num_val=2", "sampling.estimate.k=3", "sampling.estimate.max_new_tokens=24",
        "sampling.estimate.threshold=0.05", "chunk_size=4", "progress=false"]


def difficulty(tmp_path, *extra, env=None):
    return subprocess.run([sys.executable, "-m", "radgrpo.cli.difficulty", *ARGS, *extra], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "out"), **(env or {})})


def table_path(result):
    line = next(ln for ln in result.stdout.splitlines() if ln.endswith("pass_rates.parquet"))
    return line.split(" ")[-1]


@pytest.mark.integration
def test_killed_and_resumed_gives_the_uninterrupted_table_and_then_a_cache_hit(tmp_path):
    whole = difficulty(tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    path = table_path(whole)
    uninterrupted = pq.read_table(path)
    folder = os.path.dirname(path)
    shutil.rmtree(folder)  # same key, start again: killed after the first chunk of 4 rows

    killed = difficulty(tmp_path, env={KILL_AFTER_CHUNKS_ENV: "1"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert not os.path.exists(path)
    assert sorted(os.listdir(os.path.join(folder, "chunks"))) == ["000000000.parquet"]

    resumed = difficulty(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cache hit" not in resumed.stdout
    assert "pass rates:" not in resumed.stderr or "4/10" in resumed.stderr  # progress starts after the chunk
    table = pq.read_table(path)
    assert table.equals(uninterrupted)
    assert table.column("row").to_pylist() == list(range(10))
    assert set(table.column("k").to_pylist()) == {3}
    assert all(len(s) == 3 for s in table.column("scores").to_pylist())
    counts = table.column("pass_count").to_pylist()
    assert counts == [sum(x >= 0.05 for x in s) for s in table.column("scores").to_pylist()]
    # the summary's histogram is printed as one bar line per pass count
    for label, n in zip(["0/3", "1/3", "2/3", "3/3"], histogram(counts, 3)):
        assert any(ln.split()[:1] == [label] and ln.split()[-1] == str(n) for ln in resumed.stdout.splitlines())

    hit = difficulty(tmp_path)
    assert hit.returncode == 0, hit.stderr[-3000:]
    assert f"cache hit: {path}" in hit.stdout
    assert "Loading weights" not in hit.stdout + hit.stderr  # no model was loaded
    assert pq.read_table(path).equals(uninterrupted)


def test_every_part_of_the_key_names_another_cache_folder(tmp_path):
    settings = EstimateSettings(k=8, temperature=1.0, threshold=0.5, max_new_tokens=64)
    reward = {"name": "iou", "terms": [{"name": "iou", "weight": 1.0, "params": {}}]}
    base = cache_dir(tmp_path, cache_key("m", "d", reward, settings))
    assert base == cache_dir(tmp_path, cache_key("m", "d", dict(reward), settings))
    variants = [cache_key("m2", "d", reward, settings), cache_key("m", "d2", reward, settings),
                cache_key("m", "d", {**reward, "name": "iou_format"}, settings)]
    variants += [cache_key("m", "d", reward, replace(settings, **change))
                 for change in ({"k": 16}, {"temperature": 0.7}, {"threshold": 0.8}, {"max_new_tokens": 32})]
    assert len({base, *(cache_dir(tmp_path, v) for v in variants)}) == 1 + len(variants)


def test_vllm_backend_is_one_line_not_implemented(tmp_path):
    result = difficulty(tmp_path, "backend=vllm")
    assert result.returncode == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("radgrpo-difficulty: error:")]
    assert len(errors) == 1 and "vllm is not implemented" in errors[0]
