"""wandb settings reach verl's processes through the environment; a requeued run keeps its run id;
runs are labelled from their composition; sweeps are grouped by preset and swept keys."""

import pytest
from omegaconf import OmegaConf

from radgrpo.tracking import tracking_env
from radgrpo.tracking.labels import RunLabels, composition_tags, run_labels, sweep_group, swept_keys

from ..conftest import CONF_DIR


def test_console_logger_sets_nothing(tmp_path):
    assert tracking_env(OmegaConf.create({"backends": ["console"]}), tmp_path) == {}


def test_wandb_offline_env_with_a_stable_run_id_group_job_type_and_tags(tmp_path):
    logger = OmegaConf.create({"backends": ["console", "wandb"], "mode": "offline", "upload_images": False})
    labels = RunLabels(job_type="train", group="data_size_x_sampling: sampling x seed", tags=("model:m", "seed:1"))
    env = tracking_env(logger, tmp_path / "run", labels)
    assert env["WANDB_MODE"] == "offline" and env["WANDB_DIR"] == str(tmp_path / "run")
    assert env["WANDB_DATA_DIR"] == str(tmp_path / "run" / "wandb" / "data")  # staged tables stay in the run
    assert env["WANDB_RUN_GROUP"] == "data_size_x_sampling: sampling x seed" and env["WANDB_TAGS"] == "model:m,seed:1"
    assert env["WANDB_JOB_TYPE"] == "train" and env["WANDB_RESUME"] == "allow"
    assert env["RADGRPO_UPLOAD_IMAGES"] == "0"
    assert tracking_env(logger, tmp_path / "run")["WANDB_RUN_ID"] == env["WANDB_RUN_ID"]
    assert tracking_env(logger, tmp_path / "other")["WANDB_RUN_ID"] != env["WANDB_RUN_ID"]


def test_unknown_wandb_mode_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="logger.mode"):
        tracking_env(OmegaConf.create({"backends": ["wandb"], "mode": "sometimes"}), tmp_path)


def _composed(*overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_tags_are_the_composition_plus_the_users():
    cfg = _composed("logger=wandb", "sampling=uniform", "sampling.size=500", "seed=3", "logger.tags=[ablation,a,b]")
    labels = run_labels(cfg)
    assert labels.tags[:9] == ("model:tiny_qwen2_5_vl", "family:qwen2_5_vl", "data:synthetic_grounding",
                               "task:grounding", "reward:iou", "algorithm:grpo", "sampling:uniform", "size:500",
                               "seed:3")
    assert labels.tags[9:] == ("ablation", "a", "b")
    assert labels.group is None and labels.job_type == "train"  # a single run outside any experiment
    assert "experiment:smoke" in composition_tags(cfg, experiment="smoke")
    assert run_labels(_composed("logger=wandb", "logger.group=mine")).group == "mine"
    with pytest.raises(ValueError, match="job_type"):
        run_labels(cfg, job_type="sweeping")


def test_a_sweep_is_grouped_by_its_preset_and_swept_keys_not_its_timestamp(tmp_path):
    sweep_dir = tmp_path / "multirun" / "2026-11-30" / "14-00-00"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(
        {"hydra": {"overrides": {"task": ["sweep=tiny_2x2", "data.num_train=8", "reward=iou,iou_format",
                                          "+verl.x=[1,2]"]}}})))
    hydra_cfg = OmegaConf.create({"sweep": {"dir": str(sweep_dir)},
                                  "sweeper": {"params": {"seed": "1,2", "algorithm.lr": "1e-5,2e-5"}}})
    keys = swept_keys(hydra_cfg)
    assert keys == ["seed", "algorithm.lr", "reward"]
    assert sweep_group("tiny_2x2", keys, None) == "tiny_2x2: seed x algorithm.lr x reward"
    assert sweep_group(None, ["sampling"], "smoke") == "smoke/sweep: sampling"
    assert sweep_group(None, [], "smoke") == "smoke" and sweep_group(None, [], None) is None


def test_subset_statistics_count_rows_per_stratum_and_pass_rates(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from radgrpo.tracking.sampling_stats import subset_statistics

    rows = [{"data_source": "vindr", "ability": "grounding", "extra_info": {"pass_rate": r}} for r in (0.125, 0.25)]
    rows.append({"data_source": "mimic", "ability": "report", "extra_info": {"pass_rate": 0.375}})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "subset.parquet")
    stats = subset_statistics([str(tmp_path / "subset.parquet")],
                              OmegaConf.create({"strategy": "hard", "stratify_by": ["data_source"]}))
    assert stats["rows"] == 3 and stats["rows_by_data_source"] == {"vindr": 2, "mimic": 1}
    assert stats["pass_rate"] == {"mean": 0.25, "min": 0.125, "max": 0.375}


def test_a_run_folder_names_its_sweep_group_for_tools_that_log_beside_it(tmp_path):
    from radgrpo.tracking.labels import run_folder_group

    sweep_dir = tmp_path / "multirun" / "2026-11-30" / "14-00-00"
    run_dir = sweep_dir / "0_run"
    (run_dir / ".hydra").mkdir(parents=True)
    (sweep_dir / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: ['seed=1,2']\n")
    (run_dir / ".hydra" / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": {
        "mode": "MULTIRUN", "runtime": {"choices": {"sweep": "tiny_2x2", "experiment": None}},
        "sweep": {"dir": str(sweep_dir)}, "sweeper": {"params": {"algorithm.lr": "1e-5,2e-5"}}}})))
    assert run_folder_group(run_dir) == "tiny_2x2: algorithm.lr x seed"
    assert run_folder_group(run_dir, {"group": "mine"}) == "mine"
    assert run_folder_group(tmp_path) is None


# An attempt's trainer process: logs `steps` into the offline run, then is killed or finishes.
ATTEMPT = """
import sys, time, wandb
run = wandb.init(project="radgrpo", id=sys.argv[2], dir=sys.argv[1], mode="offline", resume="allow",
                 settings=wandb.Settings(console="off", x_disable_meta=True))
steps = [int(s) for s in sys.argv[3].split(",")]
for step in steps:
    run.log({"actor/pg_loss": 0.1 * step if step < 3 else 1.0 * step}, step=step)
print("logged", flush=True)
if sys.argv[4] == "wait":
    time.sleep(600)
run.finish()
"""


def test_steps_a_killed_attempt_never_wrote_are_logged_into_the_same_offline_run(tmp_path, monkeypatch):
    """wandb-core keeps an offline run's last records in memory until the run finishes: a process
    killed after logging steps 1-3 leaves none of them on disk. The next attempt, resuming from the
    checkpoint at step 2, logs steps 1-2 from the earlier attempt's metrics; then trains 3-4."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from radgrpo.tracking import wandb_run_id
    from radgrpo.tracking.labels import RunLabels
    from radgrpo.tracking.offline import read_offline_run
    from radgrpo.tracking.run import lost_steps, restore_lost_steps

    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    own_core = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}  # each attempt: its own wandb-core
    run_dir = tmp_path / "run"
    run_id = wandb_run_id(run_dir)
    killed = subprocess.Popen([sys.executable, "-c", ATTEMPT, str(run_dir), run_id, "1,2,3", "wait"],
                              stdout=subprocess.PIPE, text=True, env=own_core)
    assert killed.stdout.readline().strip() == "logged"
    time.sleep(1)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    assert [r for r in read_offline_run(run_dir, run_id).history if "actor/pg_loss" in r] == []  # nothing on disk

    earlier = [{"step": s, "data": {"actor/pg_loss": 0.1 * s}} for s in (1, 2, 3)]
    assert [line["step"] for line in lost_steps([], earlier, resume_step=2)] == [1, 2]
    on_record = [{"_step": 1, "actor/pg_loss": 0.1}, {"_step": 2, "actor/pg_loss": 0.2}]
    assert lost_steps(on_record, earlier, resume_step=2) == []  # already on record
    # a partial row (a killed attempt's table logged before its step's metrics) is not the step
    partial = [on_record[0], {"_step": 2, "val/generations": {}}]
    assert [line["step"] for line in lost_steps(partial, earlier, resume_step=2)] == [2]
    assert lost_steps([], earlier, resume_step=None) == []  # no checkpoint: the rerun starts over

    cfg = OmegaConf.create({"logger": {"backends": ["wandb"], "mode": "offline", "project": "radgrpo"},
                            "run_name": "r"})
    labels = RunLabels(job_type="train", group=None, tags=())
    assert restore_lost_steps(cfg, run_dir, labels, earlier, resume_step=2) == [1, 2]
    assert "WANDB_SERVICE" not in os.environ  # what radgrpo starts next does not join this process's wandb-core
    time.sleep(1.1)  # an offline folder is named by the second its process starts
    assert restore_lost_steps(cfg, run_dir, labels, earlier, resume_step=2) == []  # a later attempt: on record
    time.sleep(1.1)
    # the resumed attempt's trainer: a process of its own, as verl's trainer worker is
    subprocess.run([sys.executable, "-c", ATTEMPT, str(run_dir), run_id, "3,4", "finish"], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, env=own_core)
    deadline = time.monotonic() + 30
    while True:  # wandb-core closes a run's file shortly after finish() returns
        run = read_offline_run(run_dir, run_id)
        rows = [r for r in run.history if "actor/pg_loss" in r]
        if len(rows) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(run.folders) == 3
    assert [(r["_step"], r["actor/pg_loss"]) for r in rows] == [(1, 0.1), (2, 0.2), (3, 3.0), (4, 4.0)]
