"""Every algorithm option trained for real through verl on CPU: one GRPO step each on the tiny model, with
the option's verl keys read back from the run's composed verl_config.yaml.

Kept cheap for the suite's budget (one verl run per option): 2 prompts x 2 samples, 1 step, no
validation. DAPO runs on a dataset built to produce tied groups instead, to see its dynamic sampling
filter them. Options that differ only in a key one step cannot tell apart (grpo and grpo_seq, the two
REINFORCE++ variants) still run each: the run proves verl accepts and trains with that key.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from omegaconf import OmegaConf

from radgrpo.data.schema import encode_ground_truth
from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding
from radgrpo.runs.folder import load_metrics

from ..conftest import CONF_DIR, REPO

OPTIONS = sorted(p.stem for p in (CONF_DIR / "algorithm").glob("*.yaml"))
# one step of 2 prompts x 2 samples on the tiny model and its synthetic data (64-token responses)
ONE_CHEAP_STEP = ["algorithm.total_training_steps=1", "algorithm.train_batch_size=2",
                  "algorithm.ppo_mini_batch_size=2", "algorithm.rollout_n=2", "verl.trainer.val_before_train=false"]
RESPONSE_LENGTH = 64  # conf/data/synthetic_grounding.yaml

A, ACT, PL = "algorithm.", "actor_rollout_ref.actor.", "actor_rollout_ref.actor.policy_loss."
# What each option must put in verl's config: verl's own examples and the papers (README "Algorithms").
GRPO = {A + "adv_estimator": "grpo", A + "norm_adv_by_std_in_grpo": True, A + "use_kl_in_reward": False,
        ACT + "use_kl_loss": True, ACT + "kl_loss_type": "low_var_kl", ACT + "loss_agg_mode": "token-mean",
        PL + "loss_mode": "vanilla"}
NO_KL_LOSS = {ACT + "use_kl_loss": False}
KL_IN_REWARD = {A + "use_kl_in_reward": True, A + "kl_penalty": "kl", A + "kl_ctrl.kl_coef": 0.001, **NO_KL_LOSS}
EXPECTED = {
    "grpo": GRPO,
    "grpo_seq": {**GRPO, ACT + "loss_agg_mode": "seq-mean-token-mean"},
    "dr_grpo": {A + "norm_adv_by_std_in_grpo": False, ACT + "loss_agg_mode": "seq-mean-token-sum-norm",
                ACT + "loss_scale_factor": RESPONSE_LENGTH, **NO_KL_LOSS},
    "dapo": {ACT + "clip_ratio_low": 0.2, ACT + "clip_ratio_high": 0.28, ACT + "clip_ratio_c": 10.0,
             ACT + "loss_agg_mode": "token-mean", A + "use_kl_in_reward": False, A + "filter_groups.enable": True,
             A + "filter_groups.metric": "score", "reward.reward_manager.name": "dapo",
             "reward.reward_kwargs.max_resp_len": RESPONSE_LENGTH,
             "reward.reward_kwargs.overlong_buffer_cfg.len": RESPONSE_LENGTH // 5, **NO_KL_LOSS},
    "gspo": {PL + "loss_mode": "gspo", ACT + "loss_agg_mode": "seq-mean-token-mean", ACT + "clip_ratio_low": 3e-4,
             ACT + "clip_ratio_high": 4e-4, **NO_KL_LOSS},  # no clip_ratio_c: verl's GSPO loss has no dual clip
    "gmpo": {PL + "loss_mode": "geo_mean", ACT + "clip_ratio_low": 0.4, ACT + "clip_ratio_high": 0.4, **NO_KL_LOSS},
    "cispo": {PL + "loss_mode": "cispo", ACT + "clip_ratio_low": 10, ACT + "clip_ratio_high": 0.2,
              ACT + "use_kl_loss": True, ACT + "kl_loss_coef": 0.001},
    "sapo": {PL + "loss_mode": "sapo", ACT + "tau_pos": 1.0, ACT + "tau_neg": 1.05, **NO_KL_LOSS},
    "kl_cov": {PL + "loss_mode": "kl_cov", PL + "kl_cov_ratio": 0.002, PL + "ppo_kl_coef": 1.0,
               ACT + "clip_ratio_low": 0.2, ACT + "clip_ratio_high": 0.2, **NO_KL_LOSS},
    "clip_cov": {PL + "loss_mode": "clip_cov", PL + "clip_cov_ratio": 2e-4, PL + "clip_cov_lb": 1.0,
                 PL + "clip_cov_ub": 5.0, ACT + "clip_ratio_low": 1.0, ACT + "clip_ratio_high": 1.0, **NO_KL_LOSS},
    "gpg": {A + "adv_estimator": "gpg", PL + "loss_mode": "gpg", **NO_KL_LOSS},
    "rloo": {A + "adv_estimator": "rloo", **KL_IN_REWARD},
    "reinforce_pp": {A + "adv_estimator": "reinforce_plus_plus", **KL_IN_REWARD},
    "reinforce_pp_baseline": {A + "adv_estimator": "reinforce_plus_plus_baseline", **KL_IN_REWARD},
    "grpo_passk": {**GRPO, A + "adv_estimator": "grpo_passk"},
}


def train(tmp_path: Path, *args: str) -> tuple[dict, dict, dict]:
    """Run `radgrpo` with `args`; returns (summary, the trained step's metrics, verl config)."""
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    run_dir = summary_path.parent
    (step,) = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    summary = json.loads(summary_path.read_text())
    print(f"{' '.join(args[:1])}: " + ", ".join(f"{k}={step[k]:.4g}" for k in (
        "critic/score/mean", "actor/pg_loss", "actor/grad_norm", "groups/tied_frac", "timing_s/step") if k in step)
        + f", wall {time.monotonic() - start:.1f} s")
    return summary, step, yaml.safe_load((run_dir / "verl_config.yaml").read_text())


def check_trained(summary: dict, step: dict) -> None:
    assert summary["status"] == "completed" and summary["steps_completed"] == 1
    assert math.isfinite(step["actor/pg_loss"]) and math.isfinite(step["actor/grad_norm"])
    assert math.isfinite(step["critic/score/mean"]) and 0.0 <= step["groups/tied_frac"] <= 1.0


def check_keys(verl: dict, option: str) -> None:
    for key, value in EXPECTED[option].items():
        node = verl
        for part in key.split("."):
            node = node[part]
        assert node == value, (option, key, node)


def tied_group_dataset(folder: Path, cache: Path) -> Path:
    """Synthetic "no finding" X-rays, every other one relabelled with a zero-area lesion box in a corner.

    No answer box can overlap it (IoU 0) and "no finding" is wrong for it, so those prompts score 0 in
    every sample: their groups always tie.
    The tiny model sometimes says "no finding" and sometimes draws a box, so the others often vary.
    Rows keep their order (the run sets data.shuffle=false): the first prompt batch holds a tied group.
    """
    think = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "prompt" / "think.yaml"), resolve=True)  # the default
    spec = SyntheticGroundingSpec(num_train=32, num_val=4, no_finding_fraction=1.0, prompt=think,
                                  min_pixels=3136, max_pixels=12544)
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


def test_every_option_has_its_expected_keys():
    assert sorted(EXPECTED) == OPTIONS


@pytest.mark.integration
def test_dapo_filters_tied_groups_and_reports_them(tmp_path):
    data = tied_group_dataset(tmp_path / "tied", Path(os.environ["RADGRPO_CACHE"]) / "data")
    summary, step, verl = train(
        tmp_path, "algorithm=dapo", "data=prepared", f"data.dir={data}", "algorithm.total_training_steps=1",
        "verl.trainer.val_before_train=false", "verl.data.shuffle=false", "verl.data.train_batch_size=2",
        "verl.actor_rollout_ref.actor.ppo_mini_batch_size=2", "verl.data.max_prompt_length=256",
        f"verl.data.max_response_length={RESPONSE_LENGTH}")
    check_trained(summary, step)
    check_keys(verl, "dapo")
    # the unreachable-box prompts were filtered: verl's count and radgrpo's agree
    assert step["groups/filtered"] >= 1 and step["groups/filtered"] == step["training/filter_groups/evicted_samples"]
    assert step["groups/count"] == 2 and step["groups/tied_frac"] == 0.0  # what survived carries signal
    assert step["groups/generated_tied_frac"] >= step["groups/filtered"] / step["groups/generated"] > 0
    # radgrpo's reward components and DAPO's overlong penalty both reach the step metrics
    assert "reward/iou/mean" in step and "reward/overlong_reward/mean" in step


@pytest.mark.integration
@pytest.mark.parametrize("option", [o for o in OPTIONS if o != "dapo"])
def test_option_trains_one_step(option, tmp_path):
    summary, step, verl = train(tmp_path, f"algorithm={option}", *ONE_CHEAP_STEP)
    check_trained(summary, step)
    check_keys(verl, option)
    assert step["groups/count"] == 2
    # where the KL went, as the option says: a loss term, or a penalty in the reward
    actor = verl["actor_rollout_ref"]["actor"]
    assert ("actor/kl_loss" in step) == actor["use_kl_loss"]
    assert ("actor/reward_kl_penalty" in step) == verl["algorithm"]["use_kl_in_reward"]
    if option == "grpo_passk":  # only each group's best sample gets an advantage (best minus second best)
        assert step["critic/advantages/min"] >= 0.0
