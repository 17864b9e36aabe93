"""`radcliq`: reward = -RadCliQ (v1 by default, or v0), as RadVLM-GRPO rewards report generation.

RadCliQ (Yu et al. 2023, rajpurkarlab/CXR-Report-Metric) combines four metrics
x = [RadGraph F1 (mean of entity and relation F1), BERTScore (distilroberta-base, rescaled),
CheXbert embedding cosine, BLEU-2] as z = (x - mu) / sigma and a linear model with the exact
coefficients below; lower RadCliQ is better. RadVLM-GRPO's per-sample rules: lowercase, cut to 2048
characters, -3 when either text is <= 5 characters or scoring fails; the thinking variant scores the
text after the last `</think>` and gives -3 without one.

BLEU-2 is computed here (cheap); the three model-based components come from the reward server
(`scorers.radcliq_components`), which loads RadGraph, CheXbert and distilroberta from the local
paths under `models`. `validate_reward_config` checks those paths and the server URL before a run.
"""

from __future__ import annotations

import math
import os
from collections import Counter

from radgrpo.rewards.client import ServerSettings, post_scores
from radgrpo.rewards.registry import register
from radgrpo.rewards.text_metrics import reference_text

COEFFICIENTS = {
    "v1": {
        "mu": (0.53792312, 0.61757256, 0.76479421, 0.44738335),
        "sigma": (0.30282584, 0.22430938, 0.25394391, 0.29892717),
        "weights": (-0.37708368, -0.37030010, -0.25261622, 4.3e-12),
        "intercept": 2.5e-10,
    },
    "v0": {
        "mu": (0.53983760, 0.63125496, 0.77167979, 0.46073721),
        "sigma": (0.30183444, 0.22466951, 0.24750334, 0.30336671),
        "weights": (-0.47962526, -0.67621705, -0.46366575, 0.21658619),
        "intercept": 1.64166667,
    },
}
MODEL_KEYS = ("radgraph", "chexbert", "bertscore")
FAILED = -3.0  # RadVLM-GRPO's score for too-short texts and failed scoring
BOUND = 10.0  # |RadCliQ| stays far below this for component values in their ranges


def radcliq(radgraph: float, bertscore: float, semb: float, bleu: float, version: str = "v1") -> float:
    """RadCliQ-v1/v0 of one report from its four component values (lower is better)."""
    c = COEFFICIENTS[version]
    x = (radgraph, bertscore, semb, bleu)
    return sum(w * (v - m) / s for w, v, m, s in zip(c["weights"], x, c["mu"], c["sigma"])) + c["intercept"]


def bleu2(prediction: str, reference: str) -> float:
    """Sentence BLEU-2 (weights 1/2, 1/2) on lowercased whitespace tokens, brevity penalty, no
    smoothing: the BLEU component RadCliQ uses (fast_bleu in CXR-Report-Metric)."""
    hyp, ref = prediction.split(), reference.split()
    if len(hyp) < 2 or not ref:
        return 0.0
    log_sum = 0.0
    for n in (1, 2):
        hyp_ngrams = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
        ref_ngrams = Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
        matched = sum((hyp_ngrams & ref_ngrams).values())
        if matched == 0:
            return 0.0
        log_sum += 0.5 * math.log(matched / sum(hyp_ngrams.values()))
    brevity = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return brevity * math.exp(log_sum)


def _check(params: dict) -> None:
    if params.get("version", "v1") not in COEFFICIENTS:
        raise ValueError(f"radcliq params.version must be v1 or v0, got {params['version']!r}")
    models = params.get("models") or {}
    for key in MODEL_KEYS:
        path = models.get(key)
        if not path:
            raise ValueError(f"reward.models.{key} is not set: give the local path of the {key} model the reward server loads")
        if not os.path.exists(str(path)):
            raise ValueError(f"reward.models.{key} does not exist: {path}")
    ServerSettings.from_config(params.get("server"), "reward.server")


@register(
    "radcliq",
    low=-BOUND,
    high=BOUND,
    components=("radgraph", "bertscore", "semb", "bleu2", "server_failed"),
    check_config=_check,
    on_error=FAILED,
)
def radcliq_reward(
    text: str,
    gt: dict,
    extra_info: dict,
    version: str = "v1",
    thinking: bool = False,
    max_chars: int = 2048,
    fallback_score: float = FAILED,
    server: dict | None = None,
    models: dict | None = None,  # checked by validate_reward_config; the server is started with them
) -> dict:
    """-RadCliQ of the report against the reference; components are RadCliQ's four inputs."""
    reference = reference_text(gt)
    if thinking:
        end = text.rfind("</think>")
        if end < 0:
            return {"score": FAILED, "reason": "thinking variant: no </think> in the output"}
        text = text[end + len("</think>") :]
    prediction = text.strip().lower()[:max_chars]
    if reference is None or len(prediction) <= 5 or len(reference.strip()) <= 5:
        return {"score": FAILED, "reason": "report or reference too short (<= 5 characters)"}
    reference = reference.strip().lower()[:max_chars]
    bleu = bleu2(prediction, reference)
    results = post_scores(
        ServerSettings.from_config(server, "reward.server"),
        "radcliq_components",
        [{"prediction": prediction, "reference": reference}],
    )
    if results is None:
        return {"score": fallback_score, "bleu2": bleu, "server_failed": 1.0, "reason": "reward server unavailable"}
    parts = {k: float(results[0].get(k, math.nan)) for k in ("radgraph", "bertscore", "semb")}
    if not all(math.isfinite(v) for v in parts.values()):
        return {"score": fallback_score, "bleu2": bleu, "server_failed": 1.0, "reason": "server returned no components"}
    value = radcliq(parts["radgraph"], parts["bertscore"], parts["semb"], bleu, version)
    return {"score": -value, **parts, "bleu2": bleu, "server_failed": 0.0}
