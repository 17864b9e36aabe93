"""Per-component reward metrics in verl's step metrics (verl issue #2115: extra reward keys are not
logged by the trainer).

`verl_entry.compute_score` returns every term and component (`iou`, `format`, `iou/matched_iou`,
`radcliq/server_failed`, ...). verl 0.9.1 keeps them per sample in the TransferQueue field
`extra_fields["reward_extra_info"]` but its v1 trainers' `_compute_metrics` only logs the total.
This module wraps `verl.trainer.ppo.v1.trainer_base.PPOTrainer._compute_metrics` (the one method
every v1 trainer mode - sync, colocate_async, separate_async - uses for step metrics) to add
`reward/<key>/mean` for each numeric key over the step's non-padding samples, so the components
reach the "file" JSONL logger and wandb with the rest of the step's metrics. The same wrap adds the
prompt-group tie metrics of radgrpo.engine.group_metrics (`groups/*`), computed from the step's
`rm_scores` read in the same TransferQueue call.

The wrap has to happen in the process that runs the trainer (radgrpo's own: engine.runner). Importing
this module installs it: at once if verl's trainer module is already imported, else right after it
loads (radgrpo.engine.after_import). radgrpo's verl plugin imports this module, so every verl process has the hook.
"""

from __future__ import annotations

import math

from radgrpo.engine.after_import import when_imported

from radgrpo.engine.group_metrics import group_metrics, uid_of

TRAINER_MODULE = "verl.trainer.ppo.v1.trainer_base"
PREFIX = "reward"


def reward_component_metrics(reward_extra_infos: list) -> dict[str, float]:
    """{"reward/<key>/mean": batch mean} for every finite numeric key of the per-sample dicts
    (`score` is left out: verl logs it as critic/score/mean)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for info in reward_extra_infos:
        if not isinstance(info, dict):
            continue
        for key, value in info.items():
            if getattr(value, "ndim", None) == 0:  # a 0-d tensor or numpy scalar (verl's dapo manager: overlong_reward)
                value = value.item()
            if key == "score" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
    return {f"{PREFIX}/{key}/mean": sums[key] / counts[key] for key in sorted(sums)}


def with_reward_components(compute_metrics, kv_batch_get):
    """`compute_metrics` (PPOTrainer._compute_metrics) followed by the reward component means and
    the group tie metrics of the batch, read from TransferQueue with `kv_batch_get`."""

    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        result = compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch)
        data = kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                            select_fields=["extra_fields", "rm_scores"])
        extra_fields = data.pop("extra_fields").tolist()
        keep = [not tag.get("is_padding", False) for tag in batch.tags]
        infos = [e.get("reward_extra_info") for e, k in zip(extra_fields, keep) if k and isinstance(e, dict)]
        metrics.update(reward_component_metrics(infos))
        rewards = [float(r.sum()) for r, k in zip(data.pop("rm_scores"), keep) if k]
        uids = [uid_of(key) for key, k in zip(batch.keys, keep) if k]
        metrics.update(group_metrics(uids, rewards, metrics, filtering=_filters_groups(self)))
        return result

    _compute_metrics.radgrpo_reward_components = True
    return _compute_metrics


def _filters_groups(trainer) -> bool:
    """Whether DAPO's dynamic sampling (`algorithm.filter_groups.enable`) is on for this trainer."""
    config = getattr(trainer, "config", None)
    filter_groups = config.algorithm.get("filter_groups", None) if config is not None else None
    return bool(filter_groups is not None and filter_groups.get("enable", False))


def _patch(trainer_base) -> None:
    trainer = trainer_base.PPOTrainer
    if not getattr(trainer._compute_metrics, "radgrpo_reward_components", False):
        trainer._compute_metrics = with_reward_components(trainer._compute_metrics, trainer_base.tq.kv_batch_get)


def install() -> None:
    """Add the reward component metrics to verl's trainer in this process (idempotent)."""
    when_imported(TRAINER_MODULE, _patch)


install()
