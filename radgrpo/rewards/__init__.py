"""radgrpo's reward library: every reward of the seeds behind one call, pure Python (no verl,
torch or transformers import), total over any model output.

    score(name, solution_str, ground_truth, extra_info=None, **params) -> {"score": ..., ...}

Importing the package registers every reward; `REGISTRY` lists them with their ranges and
components. `verl_entry.compute_score` is verl's entry point; `validate_reward_config` checks a
composed reward config before a run starts.
"""

from radgrpo.rewards.registry import REGISTRY, Reward, get_reward, register, score
from radgrpo.rewards.config import resolve_terms, validate_reward_config
from radgrpo.rewards import (  # noqa: F401  (importing a reward module registers it)
    classification,
    enhanced,
    format,
    green,
    grounding,
    kg,
    mcqa,
    medgemma,
    radcliq,
    text_metrics,
    vqa,
)

__all__ = ["REGISTRY", "Reward", "get_reward", "register", "resolve_terms", "score", "validate_reward_config"]
