"""Algorithm options trained for real through verl on CPU (tiny model, one step each).

In the default suite: DAPO (dynamic sampling on a dataset built to produce tied groups), GSPO (a
sequence-level policy loss) and RLOO (another estimator, KL in the reward). Every other option runs
with `RADGRPO_ALL_ALGORITHMS=1 pytest -m all_algorithms tests/integration/test_algorithm_runs.py`
(deselected by default: ~1.5 min each).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from radgrpo.data.schema import encode_ground_truth
from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding
from radgrpo.runs.folder import load_metrics

from ..conftest import CONF_DIR, REPO

IN_SUITE = ("dapo", "gspo", "rloo")
OTHERS = sorted(p.stem for p in (CONF_DIR / "algorithm").glob("*.yaml") if p.stem not in IN_SUITE)
SMALL_STEP = ["algorithm.total_training_steps=1", "verl.trainer.val_before_train=false"]


def train(tmp_path: Path, *args: str) -> tuple[dict, dict, dict]:
    """Run `radgrpo` with `args`; returns (summary, the trained step's metrics, verl config)."""
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    run_dir = summary_path.parent
    (step,) = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    return json.loads(summary_path.read_text()), step, yaml.safe_load((run_dir / "verl_config.yaml").read_text())


def check_trained(summary: dict, step: dict) -> None:
    assert summary["status"] == "completed" and summary["steps_completed"] == 1
    assert math.isfinite(step["actor/pg_loss"]) and math.isfinite(step["actor/grad_norm"])
    assert math.isfinite(step["critic/score/mean"]) and 0.0 <= step["groups/tied_frac"] <= 1.0


def tied_group_dataset(folder: Path, cache: Path) -> Path:
    """Synthetic "no finding" X-rays, every other one relabelled with a zero-area lesion box in a corner.

    No answer box can overlap it (IoU 0) and "no finding" is wrong for it, so those prompts score 0 in
    every sample: their groups always tie.
    The tiny model sometimes says "no finding" and sometimes draws a box, so the others often vary.
    Rows keep their order (the run sets data.shuffle=false): the first prompt batch holds a tied group.
    """
    spec = SyntheticGroundingSpec(num_train=32, num_val=4, no_finding_fraction=1.0, min_pixels=3136, max_pixels=12544)
    source = generate_synthetic_grounding(spec, cache)
    unreachable = encode_ground_truth("grounding", boxes=[[1.0, 1.0, 1.0, 1.0]], image_size=[112, 112])
    for split in ("train", "val"):
        table = pq.read_table(source / split)
        rows = table.to_pylist()
        for row in rows[::2]:
            row["reward_model"] = {**row["reward_model"], "ground_truth": unreachable}
        (folder / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), folder / split / "part-00000.parquet")
    return folder


@pytest.mark.integration
def test_dapo_filters_tied_groups_and_reports_them(tmp_path):
    data = tied_group_dataset(tmp_path / "tied", Path(os.environ["RADGRPO_CACHE"]) / "data")
    summary, step, verl = train(
        tmp_path, "algorithm=dapo", "data=prepared", f"data.dir={data}", *SMALL_STEP,
        "verl.data.shuffle=false", "verl.data.train_batch_size=2", "verl.actor_rollout_ref.actor.ppo_mini_batch_size=2",
        "verl.data.max_prompt_length=256", "verl.data.max_response_length=64")
    check_trained(summary, step)
    assert verl["algorithm"]["filter_groups"]["enable"] is True
    assert verl["reward"]["reward_manager"]["name"] == "dapo" and verl["reward"]["reward_kwargs"]["max_resp_len"] == 64
    # the unreachable-box prompts were filtered: verl's count and radgrpo's agree
    assert step["groups/filtered"] >= 1 and step["groups/filtered"] == step["training/filter_groups/evicted_samples"]
    assert step["groups/count"] == 2 and step["groups/tied_frac"] == 0.0  # what survived carries signal
    assert step["groups/generated_tied_frac"] >= step["groups/filtered"] / step["groups/generated"] > 0
    # radgrpo's reward components and DAPO's overlong penalty both reach the step metrics
    assert "reward/iou/mean" in step and "reward/overlong_reward/mean" in step


@pytest.mark.integration
@pytest.mark.parametrize("option,keys", [
    ("gspo", {"actor_rollout_ref.actor.policy_loss.loss_mode": "gspo",
              "actor_rollout_ref.actor.loss_agg_mode": "seq-mean-token-mean"}),
    ("rloo", {"algorithm.adv_estimator": "rloo", "algorithm.use_kl_in_reward": True}),
])
def test_option_trains_one_step(option, keys, tmp_path):
    summary, step, verl = train(tmp_path, f"algorithm={option}", *SMALL_STEP)
    check_trained(summary, step)
    for key, value in keys.items():
        node = verl
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    if option == "rloo":
        assert "actor/reward_kl_penalty" in step  # the KL went into the reward, as the option says


@pytest.mark.integration
@pytest.mark.all_algorithms
@pytest.mark.skipif(not os.environ.get("RADGRPO_ALL_ALGORITHMS"), reason="set RADGRPO_ALL_ALGORITHMS=1 (~1.5 min each)")
@pytest.mark.parametrize("option", OTHERS)
def test_every_other_option_trains_one_step(option, tmp_path):
    summary, step, _ = train(tmp_path, f"algorithm={option}", *SMALL_STEP)
    check_trained(summary, step)
    print(f"{option}: " + ", ".join(f"{k}={step[k]:.4g}" for k in (
        "critic/score/mean", "actor/pg_loss", "actor/grad_norm", "groups/tied_frac", "timing_s/step") if k in step))
