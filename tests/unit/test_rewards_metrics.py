"""Per-component reward metrics reach verl's step metrics (radgrpo.engine.reward_metrics)."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from radgrpo.engine.reward_metrics import reward_component_metrics, with_reward_components
from radgrpo.rewards.verl_entry import compute_score

TERMS = [{"name": "iou", "weight": 0.9, "params": {}}, {"name": "format", "weight": 0.1, "params": {}}]


class _Stack(list):
    def tolist(self):
        return list(self)


def test_component_means_from_compute_score_outputs():
    gt = '{"task": "grounding", "boxes": [[0.1, 0.1, 0.5, 0.5]]}'
    infos = [
        compute_score("x", "<think>a</think><answer>[0.1, 0.1, 0.5, 0.5]</answer>", gt, terms=TERMS),
        compute_score("x", "<answer>[0.1, 0.1, 0.3, 0.5]</answer>", gt, terms=TERMS),
    ]
    metrics = reward_component_metrics(infos)
    assert metrics["reward/iou/mean"] == pytest.approx(0.75)
    assert metrics["reward/format/mean"] == pytest.approx(0.5)
    assert metrics["reward/iou/n_pred/mean"] == 1.0
    assert "reward/score/mean" not in metrics


def test_wrapped_compute_metrics_adds_components_of_non_padding_samples():
    extra = _Stack([{"reward_extra_info": {"iou": 1.0, "format": 0.0}}, {"reward_extra_info": {"iou": 0.0, "format": 1.0}}, {}])
    seen = {}

    def kv_batch_get(keys, partition_id, select_fields):
        seen.update(keys=keys, partition_id=partition_id, fields=select_fields)
        return {"extra_fields": extra, "rm_scores": [torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.0])]}

    def original(self, batch, metrics, timing_raw, global_steps, epoch):
        metrics["critic/score/mean"] = 0.5

    batch = SimpleNamespace(keys=["k0_0_0", "k1_0_0", "k2_0_0"], partition_id="train",
                            tags=[{}, {"is_padding": True}, {}])
    metrics = {}
    with_reward_components(original, kv_batch_get)(None, batch, metrics, {}, 1, 0)
    assert metrics == {"critic/score/mean": 0.5, "reward/iou/mean": 1.0, "reward/format/mean": 0.0,
                       "groups/count": 2.0, "groups/tied_frac": 0.0}
    assert seen == {"keys": ["k0_0_0", "k1_0_0", "k2_0_0"], "partition_id": "train",
                    "fields": ["extra_fields", "rm_scores"]}


def test_the_plugin_patches_verls_trainer_in_a_fresh_process():
    # What happens in verl's TaskRunner actor: `import verl` loads radgrpo's plugin (entry point
    # verl.plugins), which imports radgrpo.engine.reward_metrics, whose hook patches the trainer.
    code = (
        "import verl\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "print(getattr(get_trainer_cls('sync')._compute_metrics, 'radgrpo_reward_components', False))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]
