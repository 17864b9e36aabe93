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

# reward_kwargs are the same for every sample of a run; resolving them once per process (keyed on
# their repr) keeps the per-sample cost to the rewards themselves.
_RESOLVED: dict[str, tuple[Term, ...]] = {}


def compute_score(
    data_source: Any, solution_str: Any, ground_truth: Any, extra_info: Any = None, **reward_kwargs: Any
) -> dict:
    """Weighted sum of the configured terms for one sample, plus every term and component."""
    key = repr(reward_kwargs)
    terms = _RESOLVED.get(key)
    if terms is None:
        terms = _RESOLVED[key] = resolve_terms(_plain(reward_kwargs))
    info = extra_info if isinstance(extra_info, dict) else None
    total, out = 0.0, {}
    for term in terms:
        result = score(term.name, solution_str, ground_truth, info, **term.params)
        total += term.weight * result["score"]
        out[term.key] = result["score"]
        for component in get_reward(term.name).components:
            out[f"{term.key}/{component}"] = result[component]
    return {"score": total, **out}


def _plain(value: Any) -> Any:
    """OmegaConf containers (should the engine pass them) as plain dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value
