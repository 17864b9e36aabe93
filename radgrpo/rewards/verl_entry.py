"""verl's custom reward function: routes the composed `reward` config to weighted terms.

The engine points `reward.custom_reward_function.path` at this file with `name=compute_score` and
passes the reward option's `terms` plus its other keys as `reward_kwargs`. verl 0.9.1 calls this
once per sample in a RewardLoopWorker thread (verl/experimental/reward_loop). The returned dict has
the weighted `score`, each term's score under its key and each component under `<key>/<component>`:
always the same keys for one config, all floats, as verl requires for its `reward_extra_infos`.
"""

from __future__ import annotations

from typing import Any

from radgrpo.rewards.config import Term, resolve_terms
from radgrpo.rewards.registry import get_reward, score

# verl passes the same reward_kwargs objects for every sample (functools.partial over the config
# values), so the resolved terms are cached on their identities: the per-sample cost stays the
# rewards' own. The values are kept in the cache so that their ids cannot be reused.
_RESOLVED: dict[tuple, tuple[tuple, tuple]] = {}


def compute_score(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **reward_kwargs: Any
) -> dict:
    """Weighted sum of the configured terms for one sample, plus every term and component."""
    values = tuple(reward_kwargs.values())
    key = (tuple(reward_kwargs), tuple(map(id, values)))
    cached = _RESOLVED.get(key)
    if cached is None or any(a is not b for a, b in zip(cached[0], values)):
        cached = _RESOLVED[key] = (values, _with_component_keys(resolve_terms(_plain(reward_kwargs))))
    info = extra_info if isinstance(extra_info, dict) else None
    total, out = 0.0, {}
    for term, component_keys in cached[1]:
        result = score(term.name, solution_str, ground_truth, info, **term.params)
        total += term.weight * result["score"]
        out[term.key] = result["score"]
        for component, key in component_keys:
            out[key] = result[component]
    return {"score": total, **out}


def result_keys(reward_kwargs: dict) -> set[str]:
    """The keys `compute_score` returns for this reward config: score, each term, each component."""
    terms = _with_component_keys(resolve_terms(_plain(reward_kwargs)))
    return {"score"} | {key for term, components in terms for key in (term.key, *(k for _, k in components))}


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
