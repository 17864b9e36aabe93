"""Model-based report metrics (RadCliQ, GREEN) through the training rewards' own server and judge calls.

`radgrpo-eval` composes the `radcliq` and `green` reward options under `model_metrics` (conf/eval.yaml),
so an evaluation is configured with the same keys as a training run (`model_metrics.radcliq.models.*`,
`model_metrics.radcliq.server.url`, `model_metrics.green.judge.*`). A metric is on when any of its
model paths or its endpoint is given; then the reward's own check runs (paths exist, URL set) and a
mistake is one line before any generation. Each sample is scored once by the reward function itself
(radgrpo.rewards), so an evaluation number and a training reward mean the same thing:

- `radcliq`: RadCliQ-v1 (lower is better: the reward is -RadCliQ), with `radcliq/radgraph`,
  `radcliq/bertscore` and `radcliq/semb` (RadGraph F1, BERTScore, CheXbert embedding cosine) from the
  reward server's `radcliq_components` scorer; RadVLM-GRPO's rule gives a report of <= 5 characters
  RadCliQ 3 (the reward's -3), with no server call.
- `green`: the GREEN score from the judge endpoint.

A call that times out or fails (the reward's `server_failed` / `judge_failed` component is 1) is a
fallback: training scores it `fallback_score`, evaluation leaves the sample out of that metric's mean
(a placeholder is not a measurement) and counts it in the summary's `fallbacks`.
Calls are sequential, one sample per request (the server micro-batches concurrent requests only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from omegaconf import DictConfig, OmegaConf

from radgrpo.errors import ConfigError

# eval metric = sign * reward score
SIGN = {"radcliq": -1.0}
LOWER_IS_BETTER = frozenset({"radcliq"})
FAILURE_COMPONENTS = ("server_failed", "judge_failed")


@dataclass(frozen=True)
class ModelMetric:
    """One model-based metric: its name (the reward option's), the reward and its resolved params."""

    name: str
    reward: str
    params: dict
    components: tuple[str, ...]


def given(option: dict) -> bool:
    """A model-based metric is asked for when any of its model paths or its endpoint is set."""
    models = option.get("models") or {}
    endpoints = [(option.get(k) or {}).get(key) for k in ("server", "judge") for key in ("url", "model")]
    return any(v for v in models.values()) or any(endpoints)


def active_metrics(cfg: DictConfig) -> list[ModelMetric]:
    """The `model_metrics` options that are given, each checked as its training reward would be."""
    from radgrpo.rewards.config import resolve_terms, validate_reward_config
    from radgrpo.rewards.registry import get_reward

    options = OmegaConf.to_container(cfg.get("model_metrics") or {}, resolve=True)
    out = []
    for name, option in options.items():
        if not given(option):
            continue
        try:
            validate_reward_config(option)
            (term,) = resolve_terms(option)
        except ValueError as exc:
            raise ConfigError(f"model_metrics.{name}: {str(exc).replace('reward.', f'model_metrics.{name}.')}") from exc
        reward = get_reward(term.name)
        components = tuple(c for c in reward.components if c not in FAILURE_COMPONENTS)
        out.append(ModelMetric(str(name), term.name, term.params, components))
    return out


def score_samples(texts: Sequence[str], ground_truths: Sequence[dict], extra_infos: Sequence[dict],
                  metrics: Sequence[ModelMetric]) -> tuple[list[dict[str, float | None]], dict[str, int]]:
    """Per sample, every metric's value and components (None after a fallback); fallbacks per metric."""
    from radgrpo.rewards.registry import score

    values: list[dict[str, float | None]] = [{} for _ in texts]
    fallbacks = {m.name: 0 for m in metrics}
    for metric in metrics:
        sign = SIGN.get(metric.reward, 1.0)
        for i, (text, gt, extra) in enumerate(zip(texts, ground_truths, extra_infos)):
            out = score(metric.reward, text, gt, extra, **metric.params)
            failed = any(out.get(c) == 1.0 for c in FAILURE_COMPONENTS)
            fallbacks[metric.name] += failed
            values[i][metric.name] = None if failed else sign * out["score"]
            for component in metric.components:
                values[i][f"{metric.name}/{component}"] = None if failed else out[component]
    return values, fallbacks
