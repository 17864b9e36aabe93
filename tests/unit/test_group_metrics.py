"""The prompt-group tie metrics (radgrpo.engine.group_metrics) on hand-made batches, alone and
through the step-metrics hook of radgrpo.engine.reward_metrics."""

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from radgrpo.engine.group_metrics import group_metrics, tied_groups
from radgrpo.engine.reward_metrics import with_reward_components


class _Stack(list):
    def tolist(self):
        return list(self)


def test_ties_are_counted_per_prompt_group():
    uids = ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d"]
    rewards = [0.0, 0.0, 0.0, 0.8, 0.8, 0.8, 0.0, 0.5, 0.0, 1.0]
    # a (all 0) and b (all 0.8) tie; c varies; d is a single sample, which is no tie
    assert tied_groups(uids, rewards) == (4, 2)
    assert group_metrics(uids, rewards) == {"groups/count": 4.0, "groups/tied_frac": 0.5}


def test_dynamic_sampling_counts_come_from_verls_eviction_metrics():
    uids, rewards = ["a", "a", "b", "b"], [0.0, 1.0, 0.2, 0.3]
    verl_step = {"training/filter_groups/evicted_samples": 6, "training/filter_groups/discarded_surplus_samples": 2}
    metrics = group_metrics(uids, rewards, verl_step, filtering=True)
    assert metrics == {"groups/count": 2.0, "groups/tied_frac": 0.0, "groups/filtered": 6.0,
                       "groups/generated": 10.0, "groups/generated_tied_frac": 0.6}
    # verl logs no eviction key on a step that filtered nothing
    assert group_metrics(uids, rewards, {}, filtering=True)["groups/filtered"] == 0.0


def test_the_step_hook_reads_rm_scores_of_non_padding_samples():
    token_rewards = [torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([0.3]),
                     torch.tensor([0.0, 0.3]), torch.tensor([0.0]), torch.tensor([0.0])]
    keys = ["u1_0_0", "u1_1_0", "u2_0_0", "u2_1_0", "u3_0_0", "u3_1_0"]
    extra = _Stack([{"reward_extra_info": {"iou": 1.0}}] * 6)
    seen = {}

    def kv_batch_get(keys, partition_id, select_fields):
        seen["fields"] = select_fields
        return {"extra_fields": extra, "rm_scores": token_rewards}

    def original(self, batch, metrics, timing_raw, global_steps, epoch):
        metrics["training/filter_groups/evicted_samples"] = 3

    trainer = SimpleNamespace(config=OmegaConf.create({"algorithm": {"filter_groups": {"enable": True}}}))
    # the last sample is padding: u3 is then a group of one, not a tie
    batch = SimpleNamespace(keys=keys, partition_id="train", tags=[{}] * 5 + [{"is_padding": True}])
    metrics = {}
    with_reward_components(original, kv_batch_get)(trainer, batch, metrics, {}, 1, 0)
    assert seen["fields"] == ["extra_fields", "rm_scores"]
    assert metrics["groups/count"] == 3.0
    assert metrics["groups/tied_frac"] == pytest.approx(2 / 3)  # u1 (1.0, 1.0) and u2 (0.3, 0.3)
    assert metrics["groups/filtered"] == 3.0
    assert metrics["groups/generated_tied_frac"] == pytest.approx(5 / 6)
