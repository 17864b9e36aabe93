"""radgrpo-eval on CPU: the base tiny model on synthetic grounding, prepared MCQA and report sets;
every metric with a CI; a SIGKILL mid-evaluation followed by a rerun gives the same summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import REPO
from ..unit.test_prep_inputs import REPORT_Q, llava, medvlthinker_parquet, png, prep, write_json

EXPECTED = {
    "grounding": {"radvlm_map@0.5", "radvlm_avg_iou", "map@0.5", "mean_iou", "acc@0.3", "acc@0.5", "acc@0.7"},
    "mcqa": {"accuracy_strict", "accuracy_lenient"},
    "report": {"bleu4", "rouge_l"},
}


def prepared_sets(tmp_path):
    mcqa = tmp_path / "mcqa"
    prep(["source=medvlthinker", f"input={medvlthinker_parquet(tmp_path / 'm.parquet', n=6)}", f"output={mcqa}",
          "val_fraction=0"])
    image = png(tmp_path / "cxr.png", size=(56, 56))
    reports = [llava(f"mimic_{i}", image, REPORT_Q, f"Heart size is normal. Finding number {i}.") for i in range(5)]
    report = tmp_path / "report"
    prep(["source=radvlm_llava", "task=report", f"input={write_json(tmp_path / 'r.json', reports)}",
          f"output={report}", "val_fraction=0"])
    return mcqa / "train", report / "train"


def eval_command(mcqa, report):
    sets = (f"suite.sets=[{{name:synthetic,task:grounding,files:null}},{{name:mcqa,task:mcqa,files:'{mcqa}'}},"
            f"{{name:report,task:report,files:'{report}'}}]")
    return [sys.executable, "-m", "radgrpo.cli.eval", sets, "data.num_val=24", "generation.temperature=1.0",
            "generation.repeats=2", "generation.max_new_tokens=32", "bootstrap.resamples=200"]


def summary_of(outputs):
    (path,) = outputs.rglob("eval_summary.json")
    return json.loads(path.read_text()), path.parent


@pytest.mark.integration
def test_eval_base_model_every_metric_and_resume_after_sigkill(tmp_path):
    mcqa, report = prepared_sets(tmp_path)
    command = eval_command(mcqa, report)

    whole = tmp_path / "whole"
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "RADGRPO_OUTPUTS": str(whole)},
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    summary, folder = summary_of(whole)
    rows = summary["metrics"]
    for dataset, task in (("synthetic", "grounding"), ("mcqa", "mcqa"), ("report", "report")):
        got = {r["metric"]: r for r in rows if r["dataset"] == dataset}
        assert set(got) == EXPECTED[task], (dataset, sorted(got))
        for r in got.values():
            assert r["ci_low"] <= r["value"] <= r["ci_high"] or r["value"] == -1.0, r
    assert (folder / "eval_summary.csv").read_text().startswith("model,step,suite,dataset,metric,value")
    assert "radgrpo-eval: summary" in done.stdout

    # the same command killed mid-generation, then rerun: identical summary
    killed = tmp_path / "killed"
    env = {**os.environ, "RADGRPO_OUTPUTS": str(killed)}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        stores = list(killed.rglob("synthetic.*.jsonl"))
        if stores and len(stores[0].read_text().splitlines()) >= 4:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the evaluation finished before it could be interrupted"
    assert not list(killed.rglob("eval_summary.json"))
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    resumed, _ = summary_of(killed)
    assert resumed["metrics"] == summary["metrics"]


def test_missing_suite_root_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.eval", "suite=radvlm_grounding"], cwd=REPO,
                            env={**os.environ, "RADGRPO_OUTPUTS": str(tmp_path)}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "suite.root" in result.stderr
