"""Every `algorithm=` option composes into a verl config verl accepts, with its paper's keys, and its
advantage estimator and policy loss run - verl's own functions, on a batch shaped like the one verl's
V1 trainer builds - to finite values. Estimators the V1 trainer cannot feed fail at planning."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from radgrpo.engine.algorithms import V1_UNSUPPORTED_ESTIMATORS, check_algorithm
from radgrpo.runs.plan import ConfigError, plan_run

from ..conftest import CONF_DIR
from .test_config_tree import compose_train

A, ACT, PL = "algorithm.", "actor_rollout_ref.actor.", "actor_rollout_ref.actor.policy_loss."
GRPO = {A + "adv_estimator": "grpo", PL + "loss_mode": "vanilla", A + "use_kl_in_reward": False}
NO_KL = {ACT + "use_kl_loss": False, A + "use_kl_in_reward": False}
KL_IN_REWARD = {ACT + "use_kl_loss": False, A + "use_kl_in_reward": True, A + "kl_ctrl.kl_coef": 0.001}
# option -> the verl keys its paper / verl's example sets (the tiny default's 64-token budget)
EXPECTED = {
    "grpo": {**GRPO, A + "norm_adv_by_std_in_grpo": True, ACT + "use_kl_loss": True,
             ACT + "kl_loss_type": "low_var_kl", ACT + "loss_agg_mode": "token-mean"},
    "grpo_seq": {**GRPO, ACT + "use_kl_loss": True, ACT + "loss_agg_mode": "seq-mean-token-mean"},
    "dr_grpo": {**GRPO, **NO_KL, A + "norm_adv_by_std_in_grpo": False,
                ACT + "loss_agg_mode": "seq-mean-token-sum-norm", ACT + "loss_scale_factor": 64},
    "dapo": {**GRPO, **NO_KL, ACT + "clip_ratio_low": 0.2, ACT + "clip_ratio_high": 0.28,
             ACT + "clip_ratio_c": 10.0, ACT + "loss_agg_mode": "token-mean",
             A + "filter_groups.enable": True, A + "filter_groups.metric": "score",
             "reward.reward_manager.name": "dapo", "reward.reward_kwargs.max_resp_len": 64,
             "reward.reward_kwargs.overlong_buffer_cfg.enable": True,
             "reward.reward_kwargs.overlong_buffer_cfg.len": 12,
             "reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": 1.0},
    "gspo": {**NO_KL, PL + "loss_mode": "gspo", ACT + "loss_agg_mode": "seq-mean-token-mean",
             ACT + "clip_ratio_low": 3e-4, ACT + "clip_ratio_high": 4e-4},
    "gmpo": {ACT + "use_kl_loss": False, PL + "loss_mode": "geo_mean", ACT + "clip_ratio_low": 0.4,
             ACT + "clip_ratio_high": 0.4},
    "cispo": {ACT + "use_kl_loss": True, ACT + "kl_loss_coef": 0.001, PL + "loss_mode": "cispo",
              ACT + "clip_ratio_low": 10, ACT + "clip_ratio_high": 0.2},
    "sapo": {**NO_KL, PL + "loss_mode": "sapo", ACT + "tau_pos": 1.0, ACT + "tau_neg": 1.05},
    "kl_cov": {ACT + "use_kl_loss": False, PL + "loss_mode": "kl_cov", PL + "kl_cov_ratio": 0.002,
               PL + "ppo_kl_coef": 1.0, ACT + "clip_ratio_low": 0.2, ACT + "clip_ratio_high": 0.2},
    "clip_cov": {ACT + "use_kl_loss": False, PL + "loss_mode": "clip_cov", PL + "clip_cov_ratio": 0.0002,
                 PL + "clip_cov_lb": 1.0, PL + "clip_cov_ub": 5.0, ACT + "clip_ratio_low": 1.0,
                 ACT + "clip_ratio_high": 1.0},
    "gpg": {**NO_KL, A + "adv_estimator": "gpg", PL + "loss_mode": "gpg"},
    "rloo": {**KL_IN_REWARD, A + "adv_estimator": "rloo", A + "kl_penalty": "kl"},
    "reinforce_pp": {**KL_IN_REWARD, A + "adv_estimator": "reinforce_plus_plus"},
    "reinforce_pp_baseline": {**KL_IN_REWARD, A + "adv_estimator": "reinforce_plus_plus_baseline"},
    "grpo_passk": {**GRPO, A + "adv_estimator": "grpo_passk", ACT + "use_kl_loss": True},
}
OPTIONS = sorted(p.stem for p in (CONF_DIR / "algorithm").glob("*.yaml"))


def plan_verl(tmp_path, *overrides):
    return plan_run(compose_train(["cluster.device=cpu", *overrides], tmp_path)).verl_config


@pytest.fixture(scope="module")
def option_plans(tmp_path_factory):
    """Each option's verl config, planned once for the tests below (a plan costs ~1 s)."""
    cache = {}

    def plan(option):
        if option not in cache:
            cache[option] = plan_verl(tmp_path_factory.mktemp(option), f"algorithm={option}")
        return cache[option]
    return plan


def test_every_option_has_expected_keys():
    assert OPTIONS == sorted(EXPECTED)


@pytest.mark.parametrize("option", OPTIONS)
def test_option_composes_into_a_valid_verl_config_with_its_keys(option, option_plans):
    verl = option_plans(option)  # plan_run runs verl's validate_config
    got = {key: OmegaConf.select(verl, key) for key in EXPECTED[option]}
    assert got == EXPECTED[option]
    # the shared knobs reach verl whatever the variant
    assert verl.actor_rollout_ref.rollout.n >= 2 and verl.trainer.total_training_steps >= 1


# ---- verl's own functions on a V1-shaped batch -------------------------------------------------

def v1_advantage_fields() -> list[str]:
    """The fields verl's V1 trainer fetches for its advantage step, read from its source."""
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    source = inspect.getsource(PPOTrainer._compute_advantage)
    return re.findall(r'"(\w+)"', re.search(r"fields = \[([^\]]*)\]", source).group(1))


def v1_batch(n: int, groups: int = 3, length: int = 6, seed: int = 0):
    """A DataProto holding what V1's `_compute_advantage` holds: its fields, token scores, uids."""
    from verl import DataProto

    gen = torch.Generator().manual_seed(seed)
    size = n * groups
    lengths = torch.randint(2, length + 1, (size,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    rewards = torch.tensor([0.0] * n + [float(i % 2) for i in range(n)] + [0.1 * i for i in range(n)])
    scores = torch.zeros(size, length)
    scores[torch.arange(size), lengths - 1] = rewards
    logp = lambda: -torch.rand(size, length, generator=gen) * 2 * mask  # noqa: E731
    tensors = {"response_mask": mask, "rm_scores": scores, "rollout_log_probs": logp(),
               "old_log_probs": logp(), "ref_log_prob": logp(), "values": torch.zeros(size, length)}
    assert set(tensors) | {"uid"} == set(v1_advantage_fields()), "verl's V1 advantage step reads other fields"
    data = DataProto.from_dict(tensors=tensors)
    data.batch["token_level_scores"] = data.batch["rm_scores"]
    uids = [f"g{g}" for g in range(groups) for _ in range(n)]
    data.non_tensor_batch["uid"] = np.array(uids, dtype=object)
    keys = [f"{uid}_{i % n}_0" for i, uid in enumerate(uids)]
    return data, keys


def v1_advantages(verl, data, keys):
    """verl's V1 advantage step: KL penalty in the reward when configured, then the estimator."""
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import apply_kl_penalty
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    algo = verl.algorithm
    if algo.use_kl_in_reward:
        data, _ = apply_kl_penalty(data, kl_ctrl=core_algos.get_kl_controller(algo.kl_ctrl), kl_penalty=algo.kl_penalty)
    else:
        data.batch["token_level_rewards"] = data.batch["token_level_scores"]
    return compute_advantage_for_multi_trajectories(
        data, batch_keys=keys, adv_estimator=algo.adv_estimator, gamma=algo.gamma, lam=algo.lam,
        num_repeat=verl.actor_rollout_ref.rollout.n, norm_adv_by_std_in_grpo=algo.get("norm_adv_by_std_in_grpo", True),
        config=algo)


@pytest.mark.parametrize("option", OPTIONS)
def test_option_runs_verls_estimator_and_policy_loss(option, option_plans):
    from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn, kl_penalty
    from verl.utils.config import omega_conf_to_dataclass

    verl = option_plans(option)
    data, keys = v1_batch(int(verl.actor_rollout_ref.rollout.n))
    advantages = v1_advantages(verl, data, keys).batch["advantages"]
    mask = data.batch["response_mask"]
    assert torch.isfinite(advantages).all() and advantages.abs().sum() > 0
    if verl.algorithm.adv_estimator in ("grpo", "grpo_passk"):  # group-relative, no KL in the reward
        assert advantages[: len(keys) // 3].abs().sum() == 0  # group 0's rewards all tie: no signal

    actor = omega_conf_to_dataclass(verl.actor_rollout_ref.actor)  # what the actor worker builds
    actor.global_batch_info.update(dp_size=1, batch_num_tokens=mask.sum(), global_batch_size=len(keys),
                                   loss_scale_factor=actor.loss_scale_factor)  # as verl's ppo_loss does
    log_prob = (data.batch["old_log_probs"] + 0.05 * torch.randn_like(mask) * mask).requires_grad_(True)
    loss, _ = get_policy_loss_fn(actor.policy_loss.loss_mode)(
        old_log_prob=data.batch["old_log_probs"], log_prob=log_prob, advantages=advantages,
        response_mask=mask.bool(), loss_agg_mode=actor.loss_agg_mode, config=actor, rollout_is_weights=None)
    if actor.use_kl_loss:
        kld = kl_penalty(logprob=log_prob, ref_logprob=data.batch["ref_log_prob"], kl_penalty=actor.kl_loss_type)
        loss = loss + actor.kl_loss_coef * agg_loss(kld, mask.bool(), actor.loss_agg_mode, **actor.global_batch_info)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(log_prob.grad).all() and log_prob.grad.abs().sum() > 0


def test_rejected_estimators_are_exactly_those_a_v1_batch_cannot_feed(option_plans):
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    base = option_plans("grpo")
    failing = set()
    for estimator in sorted(set(ADV_ESTIMATOR_REGISTRY) - {"gae"}):  # gae needs a critic: PPO, not GRPO-style
        verl = OmegaConf.merge(base, {"algorithm": {"adv_estimator": estimator}})
        data, keys = v1_batch(int(verl.actor_rollout_ref.rollout.n))
        try:
            advantages = v1_advantages(verl, data, keys).batch["advantages"]
            assert torch.isfinite(advantages).all()
        except (KeyError, AssertionError, TypeError):
            failing.add(estimator)
    assert failing == set(V1_UNSUPPORTED_ESTIMATORS)


@pytest.mark.parametrize("override,message", [
    ("++verl.algorithm.adv_estimator=remax", "algorithm.adv_estimator=remax cannot run in verl 0.9.1's V1 trainer"),
    ("++verl.algorithm.adv_estimator=gdpo", "algorithm.adv_estimator=gdpo cannot run"),
    ("++verl.algorithm.adv_estimator=optimal_token_baseline", "needs sum_pi_squared"),
    ("++verl.algorithm.adv_estimator=grpo_typo", "not a verl estimator; known: "),
    ("++verl.actor_rollout_ref.actor.policy_loss.loss_mode=gspoo", "loss_mode=gspoo is not a verl policy loss"),
])
def test_an_algorithm_verl_cannot_run_fails_at_planning_with_one_line(override, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)) as failure:
        plan_verl(tmp_path, override)
    assert "\n" not in str(failure.value)


def test_dapo_reward_kwargs_pass_through_and_merge(tmp_path):
    verl = plan_verl(tmp_path, "algorithm=dapo", "++verl.reward.reward_kwargs.overlong_buffer_cfg.len=8")
    assert verl.reward.reward_kwargs.overlong_buffer_cfg.len == 8
    assert verl.reward.reward_kwargs.max_resp_len == 64  # the rest of the option's kwargs stay
    # a shorter budget moves the penalty with it
    verl = plan_verl(tmp_path, "algorithm=dapo", "++verl.data.max_response_length=40")
    assert verl.reward.reward_kwargs.max_resp_len == 40 and verl.reward.reward_kwargs.overlong_buffer_cfg.len == 8
    # verl's schema lacks reward.reward_kwargs; radgrpo still lets it through for any option
    verl = plan_verl(tmp_path, "++verl.reward.reward_manager.name=dapo", "++verl.reward.reward_kwargs.max_resp_len=64")
    assert verl.reward.reward_kwargs.max_resp_len == 64


@pytest.mark.parametrize("override,message", [
    ("++verl.reward.reward_kwargs.overlong_buffer_cfg.len=100", "overlong_buffer_cfg.len=100 must be in 1..64"),
    ("++verl.reward.reward_kwargs.max_resp_len=32", "max_resp_len=32 must equal data.max_response_length=64"),
    ("++verl.algorithm.filter_groups.metric=acc", "filter_groups.metric='acc' is not a reward key; known: "
                                                  "iou, iou/matched_iou, iou/n_pred, iou/no_finding, overlong_reward"),
])
def test_dapo_mistakes_fail_at_planning(override, message, tmp_path):
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_verl(tmp_path, "algorithm=dapo", override)


def test_check_algorithm_accepts_the_reward_metric_and_any_reward_key(option_plans):
    verl = option_plans("dapo")
    for metric in ("reward", "score", "iou/matched_iou"):
        check_algorithm(OmegaConf.merge(verl, {"algorithm": {"filter_groups": {"metric": metric}}}),
                        {"score", "iou", "iou/matched_iou"})


def test_verls_dapo_reward_manager_keeps_radgrpos_reward_components():
    """verl's `dapo` manager returns radgrpo's whole result dict as reward_extra_info (plus its overlong
    penalty), so the per-component step metrics keep working under DAPO."""
    import asyncio
    from functools import partial
    from types import SimpleNamespace

    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.dapo import DAPORewardManager

    from radgrpo.engine.reward_metrics import reward_component_metrics
    from radgrpo.rewards.verl_entry import compute_score

    config = OmegaConf.create({"reward": {"reward_kwargs": {
        "max_resp_len": 8, "overlong_buffer_cfg": {"enable": True, "len": 4, "penalty_factor": 1.0, "log": True}}}})
    text = "<think>a</think><answer>[0.1, 0.1, 0.5, 0.5]</answer>"
    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens=True: text)
    terms = [{"name": "iou", "weight": 0.9, "params": {}}, {"name": "format", "weight": 0.1, "params": {}}]
    manager = DAPORewardManager(config, tokenizer, partial(compute_score, terms=terms))
    responses = torch.ones(1, 8, dtype=torch.long)  # 6 valid tokens: 2 past the 4-token budget before the buffer
    truth = {"ground_truth": '{"task": "grounding", "boxes": [[0.1, 0.1, 0.5, 0.5]]}'}
    data = DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0]])},
        non_tensors={"data_source": np.array(["x"], dtype=object), "reward_model": np.array([truth], dtype=object),
                     "extra_info": np.array([{}], dtype=object)})
    result = asyncio.get_event_loop().run_until_complete(manager.run_single(data))
    assert float(result["reward_score"]) == pytest.approx(1.0 - 0.5)  # score 1.0, overlong penalty -(6 - 4) / 4
    info = result["reward_extra_info"]  # verl adds its penalty as 0-d tensors
    assert float(info["overlong_reward"]) == pytest.approx(-0.5) and bool(info["overlong"])
    metrics = reward_component_metrics([info])
    assert metrics["reward/iou/mean"] == 1.0 and metrics["reward/format/mean"] == 1.0
    assert metrics["reward/overlong_reward/mean"] == pytest.approx(-0.5)
