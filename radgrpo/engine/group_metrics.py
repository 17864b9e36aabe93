"""How many prompt groups gave GRPO no learning signal this step.

A group whose sampled responses all receive the same reward has zero group-relative advantage: it
costs generation and training time and teaches nothing. A grounding reward stuck at 0 shows up
here first (VLM-R1 issues #21, #44); TRL logs the same quantity as `frac_reward_zero_std`.

Step metrics (written next to verl's by radgrpo.engine.reward_metrics' hook):
  groups/count                the prompt groups the step trained on
  groups/tied_frac            the fraction of those whose rewards all tie
and with DAPO's dynamic sampling (`algorithm.filter_groups.enable`), whose tied groups verl's V1
replay buffer evicts before the batch is formed (verl/trainer/ppo/v1/replay_buffer.py):
  groups/filtered             groups evicted this step (verl's `training/filter_groups/evicted_samples`,
                              which counts groups and is absent when none were)
  groups/generated            groups generated for this step: trained + filtered + surplus discarded
  groups/generated_tied_frac  (filtered + tied) / generated: the tie rate before filtering

"Reward" is the per-sample total verl trains on (`rm_scores`, summed over tokens), the quantity
whose group mean and std make the advantage. A tie is zero spread (max == min) in a group of at
least two samples, the rule verl's filter applies (`np.std(values) == 0`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

FILTERED_KEY = "training/filter_groups/evicted_samples"
SURPLUS_KEY = "training/filter_groups/discarded_surplus_samples"


def uid_of(key: str) -> str:
    """The prompt group of a V1 trajectory key `{uid}_{session_id}_{index}`."""
    return key.split("_")[0]


def tied_groups(uids: Iterable[str], rewards: Iterable[float]) -> tuple[int, int]:
    """(number of groups, number of groups of >= 2 samples whose rewards are all equal)."""
    by_group: dict[str, list[float]] = defaultdict(list)
    for uid, reward in zip(uids, rewards, strict=True):
        by_group[uid].append(float(reward))
    tied = sum(1 for values in by_group.values() if len(values) > 1 and max(values) == min(values))
    return len(by_group), tied


def group_metrics(uids: Iterable[str], rewards: Iterable[float], step_metrics: dict | None = None,
                  filtering: bool = False) -> dict[str, float]:
    """The `groups/*` metrics of one step; `step_metrics` are verl's metrics of the same step (for
    the dynamic-sampling counts)."""
    count, tied = tied_groups(uids, rewards)
    metrics = {"groups/count": float(count), "groups/tied_frac": tied / count if count else 0.0}
    if filtering:
        step_metrics = step_metrics or {}
        filtered = int(step_metrics.get(FILTERED_KEY, 0))
        generated = count + filtered + int(step_metrics.get(SURPLUS_KEY, 0))
        metrics["groups/filtered"] = float(filtered)
        metrics["groups/generated"] = float(generated)
        metrics["groups/generated_tied_frac"] = (filtered + tied) / generated if generated else 0.0
    return metrics
