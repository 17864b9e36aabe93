"""Is the composed algorithm one verl 0.9.1's V1 trainer can run? Checked at planning, before Ray.

verl resolves `algorithm.adv_estimator` and `actor.policy_loss.loss_mode` in its registries
(`verl/trainer/ppo/core_algos.py`) only when the first batch reaches them, minutes into a run; a
misspelt name, or an estimator the V1 trainer (`TaskRunnerV1`, the one radgrpo runs) cannot feed,
fails there. Some registered estimators need batch fields that only verl's legacy trainer computes:
the V1 trainer's advantage step (`PPOTrainer._compute_advantage` in trainer/ppo/v1/trainer_base.py)
reads only uid, response_mask, rm_scores, rollout_log_probs, old_log_probs, ref_log_prob and values.
tests/unit/test_algorithms.py runs every registered estimator on such a batch to keep this table true.

DAPO's reward manager reads `reward.reward_kwargs`, which verl's schema lacks: its overlong buffer
is checked against the response budget here because verl asserts on it only in the reward workers.
"""

from __future__ import annotations

from omegaconf import DictConfig

# estimator -> why the V1 trainer cannot run it
V1_UNSUPPORTED_ESTIMATORS = {
    "gdpo": "needs the per-component rewards and prompts in the advantage batch (batch['prompts']), which "
            "only verl's legacy trainer passes",
    "remax": "needs greedy-baseline rewards (reward_baselines) that only verl's legacy trainer generates",
    "optimal_token_baseline": "needs sum_pi_squared from the actor, which the V1 advantage step does not read",
    "tir_optimal_token_baseline": "needs sum_pi_squared from the actor, which the V1 advantage step does not read",
}


def runnable_estimators() -> list[str]:
    from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

    return sorted(set(ADV_ESTIMATOR_REGISTRY) - set(V1_UNSUPPORTED_ESTIMATORS))


def check_algorithm(cfg: DictConfig, reward_keys: set[str]) -> None:
    """Raise ValueError (one line) when verl's V1 trainer would fail on the algorithm settings.

    `reward_keys` are the keys radgrpo's reward returns per sample (for `filter_groups.metric`).
    """
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

    estimator = str(cfg.algorithm.adv_estimator)
    if estimator in V1_UNSUPPORTED_ESTIMATORS:
        raise ValueError(f"algorithm.adv_estimator={estimator} cannot run in verl 0.9.1's V1 trainer: "
                         f"it {V1_UNSUPPORTED_ESTIMATORS[estimator]}")
    if estimator not in runnable_estimators():
        raise ValueError(f"algorithm.adv_estimator={estimator} is not a verl estimator; "
                         f"known: {', '.join(runnable_estimators())}")
    loss_mode = str(cfg.actor_rollout_ref.actor.policy_loss.get("loss_mode", "vanilla"))
    if loss_mode not in POLICY_LOSS_REGISTRY:
        raise ValueError(f"actor_rollout_ref.actor.policy_loss.loss_mode={loss_mode} is not a verl policy loss; "
                         f"known: {', '.join(sorted(POLICY_LOSS_REGISTRY))}")
    _check_filter_groups(cfg, reward_keys)
    _check_dapo_reward_manager(cfg)


def _check_filter_groups(cfg: DictConfig, reward_keys: set[str]) -> None:
    """The dynamic-sampling metric must be `reward` (the shaped total) or a key every sample's reward has."""
    filter_groups = cfg.algorithm.get("filter_groups", None)
    if filter_groups is None or not filter_groups.get("enable", False):
        return
    metric = str(filter_groups.get("metric", ""))
    known = {"reward"} | set(reward_keys) | _overlong_keys(cfg)
    if metric not in known:
        raise ValueError(f"algorithm.filter_groups.metric={metric!r} is not a reward key; "
                         f"known: {', '.join(sorted(known))}")


def _overlong_keys(cfg: DictConfig) -> set[str]:
    """Keys the dapo reward manager adds to each sample's reward info when it logs the overlong penalty."""
    if cfg.reward.reward_manager.get("name") != "dapo":
        return set()
    overlong = (cfg.reward.get("reward_kwargs", None) or {}).get("overlong_buffer_cfg", None) or {}
    return {"overlong_reward"} if overlong.get("enable", False) and overlong.get("log", False) else set()


def _check_dapo_reward_manager(cfg: DictConfig) -> None:
    """The overlong buffer must fit in, and be measured against, the response budget verl generates to."""
    if cfg.reward.reward_manager.get("name") != "dapo":
        return
    kwargs = cfg.reward.get("reward_kwargs", None) or {}
    overlong = kwargs.get("overlong_buffer_cfg", None)
    if not overlong or not overlong.get("enable", False):
        return
    budget = int(cfg.data.max_response_length)
    max_resp_len, length = kwargs.get("max_resp_len"), overlong.get("len")
    if max_resp_len is None or int(max_resp_len) != budget:
        raise ValueError(f"reward.reward_kwargs.max_resp_len={max_resp_len} must equal data.max_response_length="
                         f"{budget} for DAPO's overlong penalty")
    if length is None or not 0 < int(length) <= budget:
        raise ValueError(f"reward.reward_kwargs.overlong_buffer_cfg.len={length} must be in 1..{budget} "
                         f"(data.max_response_length)")
