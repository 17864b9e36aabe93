"""Reading a composed `reward` config: its weighted terms, and checking it before a run starts.

A `conf/reward/<option>.yaml` holds `name`, `terms` (list of {name, weight, params}, optional
`key` to label a term when one reward appears twice) and options shared by the terms (`server`,
`judge`, `fallback_score`, ...). verl receives the terms and options as `reward_kwargs` of
`verl_entry.compute_score`; the engine calls `validate_reward_config` first so that a typo or a
missing model path is one clear line before Ray starts, never a silent 0 in the middle of a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from radgrpo.rewards.registry import get_reward


@dataclass(frozen=True)
class Term:
    key: str
    name: str
    weight: float
    params: dict


def parse_terms(terms: Any) -> tuple[Term, ...]:
    """The config's terms as `Term`s; ValueError naming the bad entry."""
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ValueError("reward.terms must be a non-empty list of {name, weight, params}")
    out, seen = [], set()
    for i, term in enumerate(terms):
        if not isinstance(term, Mapping) or "name" not in term:
            raise ValueError(f"reward.terms[{i}] must be a mapping with a `name`, got {term!r}")
        name = str(term["name"])
        get_reward(name)
        key = str(term.get("key") or name)
        if key in seen or key == "score":
            raise ValueError(f"reward.terms[{i}]: duplicate term key {key!r}; set a distinct `key` on it")
        seen.add(key)
        try:
            weight = float(term.get("weight", 1.0))
        except (TypeError, ValueError):
            weight = math.nan
        if not math.isfinite(weight):
            raise ValueError(f"reward.terms[{i}].weight must be a finite number, got {term.get('weight')!r}")
        params = dict(term.get("params") or {})
        out.append(Term(key, name, weight, params))
    return tuple(out)


def resolve_terms(terms_and_options: Mapping) -> tuple[Term, ...]:
    """The terms with the config's shared options (e.g. `server`, `fallback_score`) merged into the
    params of each reward that accepts them; a term's own params win."""
    options = {k: v for k, v in terms_and_options.items() if k not in ("name", "terms")}
    resolved = []
    for term in parse_terms(terms_and_options.get("terms")):
        accepted = get_reward(term.name).param_names
        shared = {k: v for k, v in options.items() if k in accepted}
        resolved.append(Term(term.key, term.name, term.weight, {**shared, **term.params}))
    return tuple(resolved)


def validate_reward_config(terms_and_options: Mapping) -> None:
    """Raise ValueError (one line naming the key to set) when the reward config cannot run.

    Checks: known reward names, numeric weights, parameter names each reward accepts, and each
    reward's own requirements (server URL, judge endpoint, local model paths that must exist).
    """
    for i, term in enumerate(resolve_terms(terms_and_options)):
        reward = get_reward(term.name)
        unknown = sorted(set(term.params) - reward.param_names)
        if unknown:
            accepted = ", ".join(sorted(reward.param_names)) or "none"
            raise ValueError(f"reward.terms[{i}] ({term.name}): unknown params {unknown}; accepted: {accepted}")
        if reward.check_config is not None:
            reward.check_config(term.params)
