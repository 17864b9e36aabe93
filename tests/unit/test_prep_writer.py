"""Output safety: atomic publish, bounded shards, no-op reruns, nothing complete-looking after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from radgrpo.data.writer import MANIFEST, DatasetWriter
from tests.unit.test_prep_inputs import GROUNDING_Q, llava, png, prep, write_json


def test_rows_and_tables_shard_by_row_bound_and_publish_atomically(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, max_rows_per_shard=3, row_group_rows=2) as writer:
        for i in range(5):
            writer.add({"x": i, "s": str(i)}, split="train")
        writer.add_table(pa.table({"x": [5, 6, 7, 8], "s": list("5678")}), split="train")
        writer.add({"x": 0, "s": "v"}, split="val")
        assert not out.exists()  # nothing visible before publish
        writer.publish({"note": "hello"})
    manifest = json.loads((out / MANIFEST).read_text())
    shards = manifest["files"]["verl"]["train"]
    assert [s["rows"] for s in shards] == [3, 3, 3]
    assert pq.read_table(out / "train").column("x").to_pylist() == list(range(9))
    assert manifest["note"] == "hello" and manifest["files"]["verl"]["val"] == [{"name": "part-00000.parquet", "rows": 1}]
    assert not list(tmp_path.glob(".ds.*"))


def test_an_exception_leaves_the_previous_output_untouched(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out) as writer:
        writer.add({"x": 1}, split="train")
        writer.publish({"v": 1})
    with pytest.raises(RuntimeError):
        with DatasetWriter(out) as writer:
            writer.add({"x": 2}, split="train")
            raise RuntimeError("boom")
    assert json.loads((out / MANIFEST).read_text())["v"] == 1
    assert pq.read_table(out / "train").column("x").to_pylist() == [1]
    assert not list(tmp_path.glob(".ds.*"))


def test_rerun_with_same_inputs_is_a_noop_and_a_change_rebuilds(tmp_path):
    image = png(tmp_path / "a.png")
    src = write_json(tmp_path / "in.json", [llava("vindr-cxr_0", image, GROUNDING_Q, "At [0.1, 0.2, 0.3, 0.4].")])
    first = prep([f"input={src}", f"output={tmp_path / 'out'}"])
    stamp = (tmp_path / "out" / MANIFEST).stat().st_mtime_ns
    again = prep([f"input={src}", f"output={tmp_path / 'out'}"])
    assert again.skipped and not first.skipped
    assert (tmp_path / "out" / MANIFEST).stat().st_mtime_ns == stamp
    assert again.manifest["inputs"][0]["files"][0]["sha256"] == first.manifest["inputs"][0]["files"][0]["sha256"]
    assert not prep([f"input={src}", f"output={tmp_path / 'out'}", "prompt=think"]).skipped  # config changed
    os.utime(src)  # touched, same content: still a no-op
    assert prep([f"input={src}", f"output={tmp_path / 'out'}", "prompt=think"]).skipped
    src.write_text(src.read_text().replace("0.4]", "0.5]"))  # content changed
    assert not prep([f"input={src}", f"output={tmp_path / 'out'}", "prompt=think"]).skipped


def test_killed_run_leaves_nothing_that_looks_complete(tmp_path):
    """SIGKILL mid-run: no output folder, only a hidden temp folder without a manifest, which the
    next run removes."""
    image = png(tmp_path / "a.png")
    records = [llava(f"vindr-cxr_{i}", image, GROUNDING_Q, "At [0.1, 0.2, 0.3, 0.4].") for i in range(60000)]
    src = write_json(tmp_path / "big.json", records)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "radgrpo.cli.prep", f"input={src}", f"output={out}",
                             "progress=false", "shard.max_rows=1000", f"hydra.run.dir={tmp_path / 'h'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.tmp-*/train/*.parquet")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    leftovers = list(tmp_path.glob(".out.tmp-*"))
    assert leftovers and not any((d / MANIFEST).exists() for d in leftovers)
    prep([f"input={src}", f"output={out}"])
    assert (out / MANIFEST).exists() and not list(tmp_path.glob(".out.tmp-*"))
