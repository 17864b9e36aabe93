"""verl's custom reward function: routes the composed `reward` config to weighted terms.

The engine points `reward.custom_reward_function.path` at this file with `name=compute_score` and
passes the reward option's `terms` (or `routes` + `route_by`) plus its other keys as
`reward_kwargs`. verl 0.9.1 calls this once per sample in a RewardLoopWorker thread
(verl/experimental/reward_loop). The returned dict has the weighted `score`, each term's score under
its key and each component under `<key>/<component>`: always the same keys for one config. With
routes, a row's own route fills its keys and the other routes' keys are None, which verl's
validation metrics and radgrpo's step metrics (`radgrpo.engine.reward_metrics`) skip - so
`reward/iou/mean` is the mean over grounding rows and `val-core/<data_source>/...` holds each
dataset's own terms. A row no route covers scores 0 with `unrouted` = 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from radgrpo.data.schema import decode_ground_truth
from radgrpo.rewards.config import DEFAULT_ROUTE, Routing, Term, resolve_routing
from radgrpo.rewards.registry import get_reward, score

UNROUTED = "unrouted"
# verl passes the same reward_kwargs objects for every sample (functools.partial over the config
# values), so the resolved routing is cached on their identities: the per-sample cost stays the
# rewards' own. The values are kept in the cache so that their ids cannot be reused.
_RESOLVED: dict[tuple, tuple[tuple, "_Plan"]] = {}


class _Plan:
    """A resolved routing: per route, its terms with their component keys; the keys every result has."""

    def __init__(self, routing: Routing):
        self.by = routing.by
        self.routes = {route: _with_component_keys(terms) for route, terms in routing.routes.items()}
        keys = {} if self.by is None else {UNROUTED: None}
        for terms in self.routes.values():
            for term, component_keys in terms:
                keys[term.key] = None
                keys.update((key, None) for _, key in component_keys)
        self.blank = keys


def compute_score(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **reward_kwargs: Any
) -> dict:
    """Weighted sum of the row's terms for one sample, plus every term and component."""
    values = tuple(reward_kwargs.values())
    key = (tuple(reward_kwargs), tuple(map(id, values)))
    cached = _RESOLVED.get(key)
    if cached is None or any(a is not b for a, b in zip(cached[0], values)):
        cached = _RESOLVED[key] = (values, _Plan(resolve_routing(_plain(reward_kwargs))))
    plan = cached[1]
    info = extra_info if isinstance(extra_info, dict) else None
    if plan.by is None:
        terms = plan.routes[""]
    else:
        route = str(data_source) if plan.by == "data_source" else _task_of(ground_truth, info)
        terms = plan.routes.get(route, plan.routes.get(DEFAULT_ROUTE))
    out = dict(plan.blank)
    if terms is None:
        out[UNROUTED] = 1.0
        return {"score": 0.0, **out}
    total = 0.0
    for term, component_keys in terms:
        result = score(term.name, solution_str, ground_truth, info, **term.params)
        total += term.weight * result["score"]
        out[term.key] = result["score"]
        for component, ckey in component_keys:
            out[ckey] = result[component]
    if plan.by is not None:
        out[UNROUTED] = 0.0
    return {"score": total, **out}


def _task_of(ground_truth: Any, extra_info: dict | None) -> str:
    """The row's task: extra_info["task"] as prep writes it (= its `ability`), else the ground truth's."""
    task = extra_info.get("task") if extra_info else None
    return task if isinstance(task, str) and task else str(decode_ground_truth(ground_truth).get("task"))


def result_keys(reward_kwargs: dict) -> set[str]:
    """The keys `compute_score` returns for this reward config: score, each term, each component (and
    `unrouted` for a routed option)."""
    return {"score", *_Plan(resolve_routing(_plain(reward_kwargs))).blank}


def _with_component_keys(terms: tuple[Term, ...]) -> tuple:
    """Each term with its (component, "<key>/<component>") pairs, built once per config."""
    return tuple((t, tuple((c, f"{t.key}/{c}") for c in get_reward(t.name).components)) for t in terms)


def _plain(value: Any) -> Any:
    """OmegaConf containers (should the engine pass them) as plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def reward_entry(reward) -> dict[str, Any]:
    """verl's `reward.custom_reward_function` keys for a composed reward option (this file, this
    function, the option as `reward_kwargs`), after validating it: a bad option is one ConfigError line."""
    from omegaconf import OmegaConf

    from radgrpo.errors import ConfigError
    from radgrpo.rewards.config import validate_reward_config

    options = {k: v for k, v in OmegaConf.to_container(reward, resolve=True).items() if k != "verl"}
    try:
        validate_reward_config(options)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"reward '{reward.get('name')}': {exc}") from exc
    return {"path": str(Path(__file__).resolve()), "name": "compute_score", "kwargs": options}
