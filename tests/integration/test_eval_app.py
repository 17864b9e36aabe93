"""radgrpo-eval on CPU: the base tiny model on synthetic grounding, prepared MCQA and report sets;
every metric with a CI, RadCliQ through the reward server (the small test scorer of the reward-server
tests) with its timeout fallbacks counted; a SIGKILL mid-evaluation followed by a rerun gives the
same summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from radgrpo.data.schema import decode_ground_truth
from radgrpo.rewards.radcliq import bleu2, radcliq
from radgrpo.rewards.text import answer_section, token_f1, words
from radgrpo.rewards.text_metrics import reference_text

from ..conftest import REPO
from ..unit.test_prep_inputs import REPORT_Q, llava, medvlthinker_parquet, png, prep, write_json
from .test_reward_server import SLOW_WORD, start_server, stop_server

EXPECTED = {
    "grounding": {"radvlm_map@0.5", "radvlm_avg_iou", "map@0.5", "mean_iou", "acc@0.3", "acc@0.5", "acc@0.7"},
    "mcqa": {"accuracy_strict", "accuracy_lenient"},
    "report": {"bleu4", "rouge_l", "radcliq", "radcliq/radgraph", "radcliq/bertscore", "radcliq/semb", "radcliq/bleu2"},
}
REPORTS = [f"Heart size is normal. Finding number {i}." for i in range(4)] + [f"A {SLOW_WORD} enlarging nodule."]


def prepared_sets(tmp_path):
    mcqa = tmp_path / "mcqa"
    prep(["source=medvlthinker", f"input={medvlthinker_parquet(tmp_path / 'm.parquet', n=6)}", f"output={mcqa}",
          "val_fraction=0"])
    image = png(tmp_path / "cxr.png", size=(56, 56))
    reports = [llava(f"mimic_{i}", image, REPORT_Q, text) for i, text in enumerate(REPORTS)]
    report = tmp_path / "report"
    prep(["source=radvlm_llava", "task=report", f"input={write_json(tmp_path / 'r.json', reports)}",
          f"output={report}", "val_fraction=0"])
    return mcqa / "train", report / "train"


def eval_command(mcqa, report, server_url, models):
    sets = (f"suite.sets=[{{name:synthetic,task:grounding,files:null}},{{name:mcqa,task:mcqa,files:'{mcqa}'}},"
            f"{{name:report,task:report,files:'{report}'}}]")
    radcliq = [f"model_metrics.radcliq.models.{k}={models}" for k in ("radgraph", "chexbert", "bertscore")]
    return [sys.executable, "-m", "radgrpo.cli.eval", sets, "data.num_val=24", "generation.temperature=1.0",
            "generation.repeats=2", "generation.max_new_tokens=32", "bootstrap.resamples=200",
            f"model_metrics.radcliq.server.url={server_url}", "model_metrics.radcliq.server.retries=0", *radcliq]


def expected_radcliq(folder):
    """RadCliQ-v1 of every report sample from its generation and the test scorer's components; the
    samples whose server call must time out (a SLOW_WORD reference)."""
    (store,) = folder.glob("generations/report.*.jsonl")
    values, slow = {"radcliq": [], "radcliq/radgraph": [], "radcliq/bertscore": [], "radcliq/semb": []}, 0
    for line in store.read_text().splitlines():
        sample = json.loads(line)
        prediction = answer_section(sample["completion"]).strip().lower()
        reference = reference_text(decode_ground_truth(sample["ground_truth"])).strip().lower()
        if len(prediction) <= 5:  # RadVLM-GRPO's rule: RadCliQ 3 (the reward's -3), no server call
            parts = {"radcliq": 3.0, "radcliq/radgraph": 0.0, "radcliq/bertscore": 0.0, "radcliq/semb": 0.0}
        elif SLOW_WORD in reference:
            slow += 1
            continue
        else:
            f1 = token_f1(words(prediction), words(reference))
            parts = {"radcliq": radcliq(f1, 0.5 * f1, 1.0 - f1, bleu2(prediction, reference)),
                     "radcliq/radgraph": f1, "radcliq/bertscore": 0.5 * f1, "radcliq/semb": 1.0 - f1}
        for k, v in parts.items():
            values[k].append(v)
    return {k: sum(v) / len(v) for k, v in values.items()}, len(values["radcliq"]), slow


def summary_of(outputs):
    (path,) = outputs.rglob("eval_summary.json")
    return json.loads(path.read_text()), path.parent


@pytest.fixture
def reward_server():
    """The reward server with the small RadCliQ test scorer; a call slower than 2 s gets HTTP 504."""
    process, url = start_server("--scorer", "test_reward_server:radcliq_components", "--request-timeout", "2")
    yield url
    stop_server(process)


@pytest.mark.integration
def test_eval_base_model_every_metric_and_resume_after_sigkill(tmp_path, reward_server):
    mcqa, report = prepared_sets(tmp_path)
    models = tmp_path / "radcliq_models"  # the paths the real scorer would load; the test scorer needs none
    models.mkdir()
    command = eval_command(mcqa, report, reward_server, models)

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
    assert {k: t["generated"] for k, t in summary["timing"].items()} == {"synthetic": 48, "mcqa": 12, "report": 10}

    # RadCliQ through the reward server: the values the scorer's components give, the timed-out
    # samples left out of the mean and counted
    expected, scored, slow = expected_radcliq(folder)
    assert slow >= 1 and summary["fallbacks"] == {"report/radcliq": slow}
    report_rows = {r["metric"]: r for r in rows if r["dataset"] == "report"}
    for metric, value in expected.items():
        assert report_rows[metric]["value"] == pytest.approx(value, abs=1e-9), metric
        assert report_rows[metric]["n"] == scored
    assert "fallbacks" in done.stdout and "report/radcliq=" in done.stdout

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
    assert resumed["metrics"] == summary["metrics"] and resumed["fallbacks"] == summary["fallbacks"]
    # the rerun generated only what the killed run had not stored
    assert 4 <= 70 - sum(t["generated"] for t in resumed["timing"].values()) < 48


def test_missing_suite_root_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.eval", "suite=radvlm_grounding"], cwd=REPO,
                            env={**os.environ, "RADGRPO_OUTPUTS": str(tmp_path)}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "suite.root" in result.stderr
