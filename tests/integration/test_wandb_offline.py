"""`logger=wandb logger.mode=offline`: one real run of the embedded default (experiment=smoke), read
back with wandb's own record format (radgrpo.tracking.offline), with secrets planted in the
environment and in the config that must appear nowhere in the run folder, the offline run or the
console. Then the same folder is run again for one more step: it appends to the same wandb run and
its steps continue after the checkpointed ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from radgrpo.tracking import wandb_run_id
from radgrpo.tracking.offline import read_offline_run

from ..conftest import REPO

PLANTED = {
    "WANDB_API_KEY": "planted-wandb-key-7f3a9c",
    "HF_TOKEN": "hf_plantedTokenValue1234",
    "RADGRPO_REWARD_TOKEN": "planted-reward-token-55aa",
}
CONFIG_SECRETS = {
    "+logger.api_key": "planted-config-apikey-9d8e",  # a radgrpo config key
    # the reward server's token: reaches verl's config (reward_kwargs), which verl prints and logs
    "+reward.server.token": "planted-config-token-4c4c",
}


def _train(run_dir: Path, env: dict, *args: str, validate: bool = True) -> subprocess.CompletedProcess:
    # the smoke set skips validation before training; the generations table needs one
    cmd = [sys.executable, "-m", "radgrpo.cli.train", "experiment=smoke", "logger=wandb", "logger.mode=offline",
           "logger.tags=[mine]", f"hydra.run.dir={run_dir}", "verl.trainer.save_freq=2",
           f"verl.trainer.val_before_train={str(validate).lower()}",
           *(f"{k}={v}" for k, v in CONFIG_SECRETS.items()), *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("wandb_offline")
    run_dir = root / "run"
    env = {**os.environ, **PLANTED, "RADGRPO_OUTPUTS": str(root), "WANDB_CACHE_DIR": str(root / "wandb_cache"),
           "WANDB_CONFIG_DIR": str(root / "wandb_config")}
    first = _train(run_dir, env)
    assert first.returncode == 0, (first.stdout[-3000:], first.stderr[-5000:])
    offline = read_offline_run(run_dir, wandb_run_id(run_dir))
    return run_dir, env, first, offline


@pytest.mark.integration
def test_run_is_labelled_and_configured_with_the_radgrpo_groups(offline_run):
    run_dir, _, _, run = offline_run
    saved = OmegaConf.load(run_dir / "radgrpo_config.yaml")
    assert run.name == saved.run_name and run.job_type == "train" and run.group == "smoke"
    for expected in ("model:tiny_qwen2_5_vl", "family:qwen2_5_vl", "data:synthetic_grounding", "task:grounding",
                     "reward:iou", "algorithm:grpo", "sampling:all", "seed:1", "experiment:smoke", "mine"):
        assert expected in run.tags, run.tags
    radgrpo = run.config["radgrpo"]
    for group in ("model", "data", "reward", "algorithm", "sampling", "cluster", "logger"):
        assert group in radgrpo, group
    assert radgrpo["model"]["name"] == "tiny_qwen2_5_vl" and radgrpo["algorithm"]["rollout_n"] == 4
    assert run.config["trainer"]["experiment_name"] == saved.run_name  # verl's own config beside it


@pytest.mark.integration
def test_history_holds_reward_components_and_a_generations_table_without_images(offline_run):
    run_dir, _, _, run = offline_run
    train_rows = [row for row in run.history if "actor/pg_loss" in row]
    assert [row["_step"] for row in train_rows] == [1, 2]
    for row in train_rows:
        assert "reward/iou/mean" in row and "reward/iou/matched_iou/mean" in row
        assert "training/rollout_probs_diff_mean" in row and "critic/score/mean" in row
    tables = [row for row in run.history if "val/generations" in row]
    assert tables and tables[0]["val/generations"]["_type"] == "table-file"
    (table_file,) = run.folders[0].glob("files/media/table/val/generations_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"][:4] == ["prompt", "completion", "ground_truth", "score"]
    assert {"iou", "iou/matched_iou", "iou/n_pred"} <= set(table["columns"]) and "image" not in table["columns"]
    assert len(table["data"]) == 16  # the synthetic validation split
    assert all(isinstance(row[0], str) and "lesion" in row[0] for row in table["data"])
    # no image anywhere in what would be uploaded
    assert not [p for p in run.artifact_files if p.startswith("media/images")]
    assert not [p for p in (run_dir / "wandb").rglob("*") if p.suffix in (".png", ".jpg", ".jpeg")]


@pytest.mark.integration
def test_summary_json_is_the_wandb_summary(offline_run):
    run_dir, _, _, run = offline_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert run.summary["status"] == "completed" == summary["status"]
    assert run.summary["steps_completed"] == 2 and run.summary["wall_time_s"] == summary["wall_time_s"]
    assert run.summary["final_metrics"] == summary["final_metrics"]
    assert len(run.folders) == 2  # the training process and the post-run summary, one wandb run id


@pytest.mark.integration
def test_no_planted_secret_in_the_run_folder_the_offline_run_or_the_console(offline_run):
    run_dir, _, first, _ = offline_run
    secrets = [*PLANTED.values(), *CONFIG_SECRETS.values()]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".wandb") for p in files) and (run_dir / ".hydra" / "overrides.yaml").exists()
    leaks = [(str(p.relative_to(run_dir)), s) for p in files for s in secrets if s.encode() in p.read_bytes()]
    assert not leaks, leaks
    assert not [s for s in secrets if s in first.stdout or s in first.stderr]
    # redacted where the key was, not dropped: a reader sees that a secret was configured
    saved = OmegaConf.load(run_dir / "radgrpo_config.yaml")
    assert saved.logger.api_key == "<redacted>"


@pytest.mark.integration
def test_rerun_of_the_folder_appends_to_the_same_wandb_run_with_steps_continuing(offline_run):
    run_dir, env, _, _ = offline_run
    again = _train(run_dir, env, "algorithm.total_training_steps=3", validate=False)
    assert again.returncode == 0, (again.stdout[-3000:], again.stderr[-5000:])
    run = read_offline_run(run_dir, wandb_run_id(run_dir))
    assert len(run.folders) == 4  # two processes per attempt, all one wandb run id
    steps = [row["_step"] for row in run.history if "actor/pg_loss" in row]
    assert steps == [1, 2, 3]
    assert run.summary["steps_completed"] == 3 and run.summary["attempts"] == 2
    assert run.summary["sampling"]["rows"] == 64  # the training subset's statistics (sampling=all)
