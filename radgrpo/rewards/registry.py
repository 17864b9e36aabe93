"""The reward registry and `score()`, the one call every caller uses.

A reward is a plain function `fn(text, gt, extra_info, **params) -> dict` registered with its
documented score range and the names of the components it reports. `score()` is what makes the
library total: it decodes the ground truth once (cached, since GRPO scores 8 rollouts against the
same ground truth), calls the function, and turns anything unexpected - an exception, NaN, a score
out of range, a missing component - into a finite in-range result with the same keys and a
`reason`. verl drops a whole batch when samples return different keys, and one bad generation must
never stop a training run.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from radgrpo.data.schema import decode_ground_truth


@dataclass(frozen=True)
class Reward:
    name: str
    fn: Callable[..., dict]
    low: float
    high: float
    components: tuple[str, ...]
    # Raises ValueError naming the config key to set; see `validate_reward_config`.
    check_config: Callable[[dict], None] | None = None
    param_names: frozenset[str] = field(default_factory=frozenset)
    on_error: float = 0.0  # score when the function itself fails (defaults to `low`)


REGISTRY: dict[str, Reward] = {}


def register(
    name: str,
    *,
    low: float,
    high: float,
    components: tuple[str, ...] = (),
    check_config: Callable[[dict], None] | None = None,
    on_error: float | None = None,
) -> Callable:
    """Decorator: add a reward function to the registry under `name`."""

    def wrap(fn: Callable[..., dict]) -> Callable[..., dict]:
        if name in REGISTRY:
            raise ValueError(f"reward {name!r} registered twice")
        params = inspect.signature(fn).parameters
        param_names = frozenset(p for p in list(params)[3:] if params[p].kind is not params[p].VAR_KEYWORD)
        error_score = float(low if on_error is None else on_error)
        REGISTRY[name] = Reward(name, fn, float(low), float(high), components, check_config, param_names, error_score)
        return fn

    return wrap


def get_reward(name: str) -> Reward:
    """The registered reward `name`, or ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown reward {name!r}; known rewards: {known}") from None


def score(name: str, solution_str: Any, ground_truth: Any, extra_info: dict | None = None, **params: Any) -> dict:
    """Score one model output with reward `name`: {"score": float, <component>: float, ...}.

    Never raises on any model output or ground truth (an unknown reward `name` is a config error
    and does raise). When the reward could not score normally the dict also has a `reason` string.
    """
    reward = get_reward(name)
    text = solution_str if isinstance(solution_str, str) else ("" if solution_str is None else str(solution_str))
    gt = _decode(ground_truth) if isinstance(ground_truth, str) else decode_ground_truth(ground_truth)
    try:
        out = reward.fn(text, gt, extra_info if isinstance(extra_info, dict) else {}, **params)
    except Exception as exc:  # noqa: BLE001 - totality is the contract; the reason is reported
        out = {"score": reward.on_error, "reason": f"{type(exc).__name__}: {exc}"[:200]}
    return _finalise(reward, out)


@lru_cache(maxsize=8192)
def _decode(ground_truth: str) -> dict:
    # Rewards only read the decoded dict, so sharing one instance across rollouts is safe.
    return decode_ground_truth(ground_truth)


def _finalise(reward: Reward, out: dict) -> dict:
    value = out.get("score")
    if type(value) is float and reward.low <= value <= reward.high:  # the common case; NaN fails it
        result = {"score": value}
    else:
        result = {"score": min(max(_finite(value, reward.low), reward.low), reward.high)}
        if not out.get("reason"):
            result["reason"] = f"score {value!r} replaced to stay in [{reward.low}, {reward.high}]"
    for key in reward.components:
        result[key] = _finite(out.get(key), 0.0)
    if out.get("reason"):
        result["reason"] = str(out["reason"])
    return result


def _finite(value: Any, default: float) -> float:
    if type(value) is float:
        return value if value - value == 0.0 else default  # inf - inf and nan - nan are nan
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return value if math.isfinite(value) else default
