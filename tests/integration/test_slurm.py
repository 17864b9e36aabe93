"""radgrpo on a real SLURM cluster (launchers/slurm/up, two emulated nodes): the `radgrpo` app submits
through submitit / hydra-submitit-launcher and verl trains the tiny model on CPU inside the jobs."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image
from radgrpo.tracking import wandb_run_id
from radgrpo.tracking.offline import read_offline_run

from .slurm_fixture import (CPU_SLURM_ARGS, REPO, radgrpo_cmd, radgrpo_env, run_radgrpo, run_root,  # noqa: F401
                           slurm_cluster, submitted)

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

# Cheapest verl settings for runs whose training content does not matter here.
NO_VALIDATION = ["verl.trainer.val_before_train=false", "verl.trainer.test_freq=-1"]


def metric_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def sweep_runs(output_root: Path) -> list[Path]:
    runs = sorted(output_root.glob("multirun/*/*/*/.hydra"))
    return [p.parent for p in runs]


def test_default_run_submitted_with_cluster_slurm_returns_its_summary(slurm_cluster, run_root):
    proc = run_radgrpo(["cluster=slurm", *CPU_SLURM_ARGS, f"paths.output_root={run_root}"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    job_id, run_dir = submitted(proc.stdout)
    assert run_dir.is_relative_to(run_root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_completed"] == 2
    # the app printed the summary the job returned, which is the one the job wrote
    assert f"radgrpo: completed: 2 steps in {summary['wall_time_s']} s" in proc.stdout
    assert (run_dir / "slurm" / job_id / f"{job_id}_0_log.out").exists()
    rows = slurm_cluster.wait_state(job_id, {"COMPLETED"})
    assert [r["State"] for r in rows] == ["COMPLETED"], rows


# The rows of tests/integration/test_study_sweep.py: the same pass-rate table (radgrpo-difficulty's cache
# entry), whichever of the two tests computes it first in a session.
STUDY_DATA = ["data.num_train=24", "data.num_val=4"]


def test_size_x_sampling_study_runs_as_one_job_array_with_hard_sampling_and_is_reported(slurm_cluster, run_root):
    """The study on SLURM: pass rates from radgrpo-difficulty as a SLURM job, then the CPU study preset
    cut to 2 sizes x 2 strategies x 1 seed as one 4-task job array (1 GRPO step each, no validation),
    the hard runs choosing from that table inside their array tasks, then radgrpo-report."""
    from radgrpo.difficulty import SUMMARY

    import pyarrow.parquet as pq

    difficulty = run_radgrpo(["sampling=hard_tiny", "progress=false", *STUDY_DATA, "cluster=slurm", *CPU_SLURM_ARGS,
                              f"paths.output_root={run_root}"], app="radgrpo-difficulty")
    assert difficulty.returncode == 0, difficulty.stdout[-3000:]
    job_id, difficulty_dir = submitted(difficulty.stdout)
    table = json.loads((difficulty_dir / SUMMARY).read_text())["table"]
    eligible = {r["id"] for r in pq.read_table(table).to_pylist() if 0.25 <= r["pass_rate"] <= 0.75}
    assert len(eligible) >= 4, f"the tiny model passes too few rows 1-3 times of 4: {len(eligible)}"
    assert [r["State"] for r in slurm_cluster.wait_state(job_id, {"COMPLETED"})] == ["COMPLETED"]

    proc = run_radgrpo(["-m", "sweep=cpu_size_x_sampling", "sampling.size=2,4", "seed=1", *STUDY_DATA,
                        "algorithm.train_batch_size=2", "algorithm.ppo_mini_batch_size=2", "cluster=slurm",
                        *CPU_SLURM_ARGS, "cluster.slurm.array_parallelism=2", f"paths.output_root={run_root}"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "[radgrpo.sweep] 4 of 4 runs completed" in proc.stdout
    runs = sweep_runs(run_root)
    assert len(runs) == 4
    statuses = [json.loads((r / "job_status.json").read_text()) for r in runs]
    array_ids = {s["slurm_job_id"] for s in statuses}
    assert len(array_ids) == 1, f"expected one job array, got {array_ids}"
    assert sorted(s["slurm_array_task_id"] for s in statuses) == ["0", "1", "2", "3"]
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps_completed"] == 1, run
        ids = json.loads((run / "data" / "train_ids.json").read_text())
        if run.name.endswith("hard_tiny"):  # chosen inside the array task from the difficulty job's table
            assert set(ids) <= eligible, (run, ids)
        assert len(ids) in (2, 4)
    rows = slurm_cluster.wait_state(array_ids.pop(), {"COMPLETED"})
    assert len(rows) == 4 and {r["State"] for r in rows} == {"COMPLETED"}, rows

    (multirun,) = {r.parent for r in runs}
    report = run_radgrpo([str(multirun), "--no-wandb"], app="radgrpo-report")
    assert report.returncode == 0, report.stdout[-3000:]
    assert "4 of 4 runs completed" in report.stdout
    with open(multirun / "report" / "runs.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert sorted((r["strategy"], r["train_rows"], r["status"]) for r in csv_rows) == [
        ("hard", "2", "completed"), ("hard", "4", "completed"), ("uniform", "2", "completed"),
        ("uniform", "4", "completed")]
    for row in csv_rows:
        summary = json.loads((multirun / row["run"] / "summary.json").read_text())
        assert float(row["final/critic/score/mean"]) == pytest.approx(summary["final_metrics"]["critic/score/mean"])
    with open(multirun / "report" / "summary_table.csv") as fh:
        assert sorted((r["size"], r["strategy"], r["n"]) for r in csv.DictReader(fh)) == [
            ("2", "hard", "1"), ("2", "uniform", "1"), ("4", "hard", "1"), ("4", "uniform", "1")]
    for name in ("metric_vs_size.png", "reward_curves.png"):
        with Image.open(multirun / "report" / name) as image:
            assert image.format == "PNG"
    plotted = json.loads((multirun / "report" / "report.json").read_text())["plotted"]
    assert set(plotted["metric_vs_size"]) == {"hard", "uniform"} and len(plotted["reward_curves"]) == 4


def test_failed_run_is_reported_with_its_log_and_the_rest_of_the_sweep_completes(slurm_cluster, run_root):
    empty_model = run_root / "not_a_model"  # exists where radgrpo submits, holds no model on the node
    empty_model.mkdir()
    proc = run_radgrpo(["-m", "cluster=slurm", *CPU_SLURM_ARGS, *NO_VALIDATION,
                        "algorithm.total_training_steps=1", f"model.path={empty_model}",
                        "model.tiny=tiny_qwen2_5_vl,null", f"paths.output_root={run_root}"])
    assert proc.returncode != 0
    match = re.search(r"1 of 2 sweep runs failed: #1 \(([^)]*)\) log: (\S+)", proc.stdout)
    assert match, proc.stdout[-3000:]
    assert "model.tiny=null" in match.group(1)
    log = Path(match.group(2))
    ok, bad = sweep_runs(run_root)
    assert json.loads((ok / "summary.json").read_text())["status"] == "completed"
    status = json.loads((bad / "job_status.json").read_text())
    assert status["status"] == "failed" and status["log"]["stderr"] == str(log)
    # the failed run's own log holds its traceback, ending in the error the report names
    text = log.read_text()
    assert "Traceback" in text and status["error"].split(":")[0] in text and "model" in status["error"]


def test_submitted_run_that_fails_on_the_node_is_reported_with_its_log(slurm_cluster, run_root):
    empty_model = run_root / "not_a_model"  # exists where radgrpo submits, holds no model on the node
    empty_model.mkdir()
    proc = run_radgrpo(["cluster=slurm", *CPU_SLURM_ARGS, *NO_VALIDATION, "model.tiny=null",
                        f"model.path={empty_model}", f"paths.output_root={run_root}"])
    assert proc.returncode != 0
    job_id, run_dir = submitted(proc.stdout)
    # one line for the user, not a traceback
    match = re.search(rf"^radgrpo: error: SLURM job {job_id} failed: (.+); log: (\S+)$", proc.stdout, re.MULTILINE)
    assert "Traceback" not in proc.stdout
    assert match, proc.stdout[-3000:]
    log = Path(match.group(2))
    assert log == run_dir / "slurm" / job_id / f"{job_id}_0_log.err"
    assert "Traceback" in log.read_text() and match.group(1).split(":")[0] in log.read_text()
    rows = slurm_cluster.wait_state(job_id, {"FAILED"})
    assert rows[0]["State"] == "FAILED", rows


def test_two_node_run_spans_ray_over_both_nodes_and_completes(slurm_cluster, run_root):
    proc = run_radgrpo(["cluster=slurm_multinode", *CPU_SLURM_ARGS, *NO_VALIDATION,
                        "cluster.ray_num_cpus=16", f"paths.output_root={run_root}"])
    assert proc.returncode == 0, proc.stdout[-3000:]
    job_id, run_dir = submitted(proc.stdout)
    rendezvous = run_dir / "ray" / f"{job_id}-0"
    nodes = json.loads((rendezvous / "nodes.json").read_text())
    assert len(nodes) == 2 and all(n["resources"].get("GPU") == 1 for n in nodes), nodes
    status = (rendezvous / "status.txt").read_text()
    active = status.split("Active:")[1].split("Pending:")[0]
    assert len(re.findall(r"node_[0-9a-f]+", active)) == 2, status
    assert re.search(r"0\.0/2\.0 GPU|/2\.0 GPU", status), status
    assert _verl_nnodes(run_dir) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps_completed"] == 2
    rows = slurm_cluster.wait_state(job_id, {"COMPLETED"})
    assert rows[0]["State"] == "COMPLETED" and rows[0]["NNodes"] == "2", rows
    # both ranks stopped their Ray node: nothing of this job's Ray is left on the machine
    leftover = [p.name for p in Path("/proc").glob("[0-9]*") if _cmdline_has(p, f"radgrpo-ray-{job_id}-")]
    assert not leftover, f"Ray processes left behind: {leftover}"
    for rank in (0, 1):
        log = (run_dir / "slurm" / job_id / f"{job_id}_{rank}_log.out").read_text()
        assert "stopped" in log, f"rank {rank} did not stop its Ray node:\n{log[-2000:]}"


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _verl_nnodes(run_dir: Path) -> int:
    from omegaconf import OmegaConf

    return int(OmegaConf.load(run_dir / "verl_config.yaml").trainer.nnodes)


USR2_TOTAL_STEPS = 6


@pytest.fixture(scope="module")
def preempted_run(slurm_cluster):
    """A run preempted (USR2) after its first checkpoint, requeued and resumed to the end; its checkpoints
    (steps 2, 4, 6) are evaluated by the SLURM evaluation test too."""
    from .slurm_fixture import RUNS_ROOT

    RUNS_ROOT.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="usr2-", dir=RUNS_ROOT))
    # 8 rows, batch 4: 2 steps per epoch, so the checkpoint at step 2 sits on an epoch boundary, where
    # verl used to resume and train 0 steps (verl PR #5725).
    args = ["cluster=slurm", *CPU_SLURM_ARGS, *NO_VALIDATION, f"algorithm.total_training_steps={USR2_TOTAL_STEPS}",
            "data.num_train=8", "verl.trainer.save_freq=2", "logger=wandb", "logger.mode=offline",
            f"paths.output_root={root}"]
    proc = subprocess.Popen([*radgrpo_cmd(), *args], cwd=REPO, env=radgrpo_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if "submitted SLURM job" in line:
                break
        job_id, run_dir = submitted("".join(out))
        latest = run_dir / "checkpoints" / "latest_checkpointed_iteration.txt"
        deadline = time.monotonic() + 900
        while not (latest.exists() and latest.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
            time.sleep(0.2)
        checkpointed = int(latest.read_text())
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        rest, _ = proc.communicate(timeout=1200)
        out.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(out)
    print(output[-20000:])
    return proc.returncode, output, job_id, run_dir, checkpointed


def test_usr2_after_a_checkpoint_requeues_and_training_resumes_at_the_next_step(preempted_run):
    returncode, output, job_id, run_dir, checkpointed = preempted_run
    total = USR2_TOTAL_STEPS
    assert returncode == 0, output[-3000:]
    assert checkpointed < total
    log = (run_dir / "slurm" / job_id / f"{job_id}_0_log.out").read_text()
    assert "restart 0" in log and "restart 1" in log, log[-3000:]  # the same job ran again after USR2
    summary = json.loads((run_dir / "summary.json").read_text())
    # the resumed attempt loaded the latest checkpoint and went on from the step after it
    resumed_from = summary["first_step"] - 1
    assert resumed_from >= checkpointed
    attempts = sorted(run_dir.glob("metrics.attempt*.jsonl"))
    assert attempts, "the requeued run did not keep the first attempt's metrics"
    resumed_steps = [s for s in metric_steps(run_dir / "metrics.jsonl") if s > 0]
    assert resumed_steps[0] == resumed_from + 1, resumed_steps
    assert resumed_steps[-1] == total, resumed_steps
    assert summary["status"] == "completed" and summary["steps_completed"] == total
    # both attempts logged into ONE wandb run (the id is the run folder's), each step once: the
    # preempted attempt's steps up to its checkpoint, which its killed wandb process never wrote to disk,
    # were logged from metrics.attempt1.jsonl by the requeued attempt before it resumed. Every step the
    # file logger recorded is there; a step whose checkpoint was saved but whose metrics the kill beat
    # (verl saves before it logs the step) is in neither file, and is not trained again.
    offline = read_offline_run(run_dir, wandb_run_id(run_dir))
    assert len(offline.folders) >= 3, offline.folders  # attempt 1, (restored steps,) attempt 2, post-run summary
    earlier = {s for a in attempts for s in metric_steps(a) if 0 < s <= resumed_from}
    assert earlier, "the preempted attempt recorded no step"
    steps = [row["_step"] for row in offline.history if "actor/pg_loss" in row]
    assert steps == sorted(earlier | set(resumed_steps)), (steps, sorted(earlier), resumed_steps)
    assert set(range(1, total + 1)) - set(steps) <= {resumed_from}, steps  # at most the checkpointed step
    assert offline.summary["status"] == "completed" and offline.summary["attempts"] == 2


def test_eval_of_every_checkpoint_runs_as_one_job_array_and_marks_the_best(slurm_cluster, preempted_run, run_root):
    """radgrpo-eval checkpoint=<run> step=all cluster=slurm: one array task per checkpoint, each exporting
    and evaluating its own (a few synthetic grounding samples), then eval_best.json over all of them."""
    _, _, _, run_dir, _ = preempted_run
    steps = sorted(int(p.name.rsplit("_", 1)[-1]) for p in (run_dir / "checkpoints").glob("global_step_*"))
    assert len(steps) >= 2, steps
    proc = run_radgrpo([f"checkpoint={run_dir}", "step=all", "cluster=slurm", *CPU_SLURM_ARGS, "data.num_val=2",
                        "generation.max_new_tokens=16", "bootstrap.resamples=50", f"paths.output_root={run_root}"],
                       app="radgrpo-eval")
    assert proc.returncode == 0, proc.stdout[-3000:]
    match = re.search(r"submitted SLURM job array (\d+) \((\d+) tasks", proc.stdout)
    assert match and int(match.group(2)) == len(steps), proc.stdout[-3000:]
    rows = slurm_cluster.wait_state(match.group(1), {"COMPLETED"})
    assert len(rows) == len(steps) and {r["State"] for r in rows} == {"COMPLETED"}, rows
    suite = run_dir / "eval" / "synthetic_grounding"
    for step in steps:
        summary = json.loads((suite / f"global_step_{step}" / "eval_summary.json").read_text())
        assert summary["step"] == f"global_step_{step}" and summary["model_path"] == str(run_dir / "export" / f"global_step_{step}")
        assert {r["metric"] for r in summary["metrics"]} >= {"map@0.5", "mean_iou"}
        assert all(r["n"] == 2 for r in summary["metrics"])
    best = json.loads((suite / "eval_best.json").read_text())
    values = {step: {r["metric"]: r["value"] for r in json.loads(
        (suite / f"global_step_{step}" / "eval_summary.json").read_text())["metrics"]} for step in steps}
    for metric, choice in best["synthetic_grounding"].items():
        assert choice["value"] == max(v[metric] for v in values.values()), (metric, choice)
