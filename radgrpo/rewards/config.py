"""Reading a composed `reward` config: its weighted terms, and checking it before a run starts.

A `conf/reward/<option>.yaml` holds `name`, `terms` (list of {name, weight, params}, optional
`key` to label a term when one reward appears twice) and options shared by the terms (`server`,
`judge`, `fallback_score`, ...). A multi-task option has `routes` instead of `terms`: one term list
per task (`route_by: task`, the row's `ability` as prep writes it into extra_info and the ground
truth) or per `data_source` (`route_by: data_source`), plus an optional `default` route for the
rest, so each row of a mixed dataset is scored by its own task's reward. verl receives the terms and options as `reward_kwargs` of
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


ROUTE_BY = ("task", "data_source")
DEFAULT_ROUTE = "default"
_STRUCTURE = ("name", "terms", "routes", "route_by")


@dataclass(frozen=True)
class Routing:
    """Which terms score a row: `routes[""]` for every row when `by` is None, else the route named
    by the row's task or data source (`DEFAULT_ROUTE` for the others)."""

    by: str | None
    routes: dict[str, tuple[Term, ...]]


def parse_terms(terms: Any, where: str = "reward.terms") -> tuple[Term, ...]:
    """The config's terms as `Term`s; ValueError naming the bad entry."""
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ValueError(f"{where} must be a non-empty list of {{name, weight, params}}")
    out, seen = [], set()
    for i, term in enumerate(terms):
        if not isinstance(term, Mapping) or "name" not in term:
            raise ValueError(f"{where}[{i}] must be a mapping with a `name`, got {term!r}")
        name = str(term["name"])
        get_reward(name)
        key = str(term.get("key") or name)
        if key in seen or key == "score":
            raise ValueError(f"{where}[{i}]: duplicate term key {key!r}; set a distinct `key` on it")
        seen.add(key)
        try:
            weight = float(term.get("weight", 1.0))
        except (TypeError, ValueError):
            weight = math.nan
        if not math.isfinite(weight):
            raise ValueError(f"{where}[{i}].weight must be a finite number, got {term.get('weight')!r}")
        params = dict(term.get("params") or {})
        out.append(Term(key, name, weight, params))
    return tuple(out)


def resolve_terms(terms_and_options: Mapping, where: str = "reward.terms", terms: Any = None) -> tuple[Term, ...]:
    """The terms with the config's shared options (e.g. `server`, `fallback_score`) merged into the
    params of each reward that accepts them; a term's own params win."""
    options = {k: v for k, v in terms_and_options.items() if k not in _STRUCTURE}
    resolved = []
    listed = terms_and_options.get("terms") if terms is None else terms
    for term in parse_terms(listed, where):
        accepted = get_reward(term.name).param_names
        shared = {k: v for k, v in options.items() if k in accepted}
        resolved.append(Term(term.key, term.name, term.weight, {**shared, **term.params}))
    return tuple(resolved)


def resolve_routing(config: Mapping) -> Routing:
    """The config's terms, or its routes with `route_by`; ValueError naming the key to fix."""
    routes = config.get("routes")
    if routes is None:
        if config.get("route_by") is not None:
            raise ValueError("reward.route_by needs reward.routes (one term list per task or data source)")
        return Routing(None, {"": resolve_terms(config)})
    if config.get("terms") is not None:
        raise ValueError("set either reward.terms (every row) or reward.routes (per task/data source), not both")
    by = config.get("route_by") or "task"
    if by not in ROUTE_BY:
        raise ValueError(f"reward.route_by must be one of {', '.join(ROUTE_BY)}, got {by!r}")
    if not isinstance(routes, Mapping) or not routes:
        raise ValueError("reward.routes must map a task or data source to a list of terms")
    return Routing(by, {str(k): resolve_terms(config, f"reward.routes.{k}", v) for k, v in routes.items()})


def validate_reward_config(terms_and_options: Mapping) -> None:
    """Raise ValueError (one line naming the key to set) when the reward config cannot run.

    Checks: known reward names, numeric weights, parameter names each reward accepts, and each
    reward's own requirements (server URL, judge endpoint, local model paths that must exist), in
    every route of a routed config.
    """
    routing = resolve_routing(terms_and_options)
    for route, terms in routing.routes.items():
        where = f"reward.routes.{route}" if routing.by else "reward.terms"
        for i, term in enumerate(terms):
            reward = get_reward(term.name)
            unknown = sorted(set(term.params) - reward.param_names)
            if unknown:
                accepted = ", ".join(sorted(reward.param_names)) or "none"
                raise ValueError(f"{where}[{i}] ({term.name}): unknown params {unknown}; accepted: {accepted}")
            if reward.check_config is not None:
                reward.check_config(term.params)
