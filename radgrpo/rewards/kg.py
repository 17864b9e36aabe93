"""`kg_jaccard`: knowledge-graph overlap of seed 003 (CheXPO-v2 `external_kg_jac`), in [0, 1].

Entities E = {(text, type)} and relations R = {(source, target, type)} are extracted from the
prediction and the reference; reward = 1/2 (|E n E*| / |E u E*| + |R n R*| / |R u R*|), an empty
union scoring 1 (`metric: f1` uses F1 instead of Jaccard, the variant of the notes). The reference is
the ground truth's `kg` when the data carries one ({"entities": [[text, type]], "relations":
[[source, target, type]]}), else the graph of its `reasoning` (the solution's `<think>` content),
compared with the model's `<think>` content (its whole output without one); a ground truth with only
an answer or report text is compared with the model's answer section.

Extractors are pluggable: `rule` (default, runs anywhere) finds the vocabulary of
`radgrpo.rewards.terms` per sentence, typed like RadGraph (ANAT, OBS-DP present, OBS-DA negated,
OBS-U uncertain), with `located_at` relations between the observations and anatomy of a sentence;
`server` asks the reward server's RadGraph scorer (`scorers.radgraph_graph`, model path in the
server config) for the same structure.
"""

from __future__ import annotations

import re

from radgrpo.rewards.client import ServerSettings, post_scores
from radgrpo.rewards.registry import register
from radgrpo.rewards.terms import ANATOMY_RE, NEGATION, UNCERTAINTY, _alternation
from radgrpo.rewards.text import MAX_WORDS_CHARS, answer_section, reasoning_section, tag_section

Graph = tuple[frozenset, frozenset]
_SENTENCES = re.compile(r"[.;\n]+")
_OBSERVATION_RE = None
_NEGATION_RE = re.compile(r"\b(" + "|".join(NEGATION) + r")\b")
_UNCERTAIN_RE = re.compile(r"\b(" + "|".join(UNCERTAINTY) + r")\b")
EXTRACTORS = ("rule", "server")


def _observations() -> re.Pattern:
    global _OBSERVATION_RE
    if _OBSERVATION_RE is None:
        from radgrpo.rewards.terms import ABNORMALITY_SYNONYMS, DESCRIPTORS

        extra = ("normal", "unremarkable", "edema", "emphysema", "fibrosis", "scarring", "fracture", "calcification")
        terms = [t for syn in ABNORMALITY_SYNONYMS.values() for t in syn] + list(extra) + list(DESCRIPTORS["density"])
        _OBSERVATION_RE = _alternation(terms)
    return _OBSERVATION_RE


def rule_graph(text: str) -> Graph:
    """Entities and relations found by the vocabulary rules (see module docstring)."""
    entities, relations = set(), set()
    for sentence in _SENTENCES.split(text[:MAX_WORDS_CHARS].lower()):
        anatomy = {m.group(1) for m in ANATOMY_RE.finditer(sentence)}
        observations = set()
        for match in _observations().finditer(sentence):
            before = sentence[: match.start()]
            kind = "OBS-DA" if _NEGATION_RE.search(before) else "OBS-U" if _UNCERTAIN_RE.search(sentence) else "OBS-DP"
            observations.add((match.group(1), kind))
        entities |= {(a, "ANAT") for a in anatomy} | observations
        relations |= {(o, a, "located_at") for o, _ in observations for a in anatomy}
    return frozenset(entities), frozenset(relations)


def graph_from_data(kg) -> Graph | None:
    """A ground-truth graph given in the data, or None when absent or malformed."""
    if not isinstance(kg, dict):
        return None
    try:
        entities = frozenset((str(t).lower(), str(k)) for t, k in kg.get("entities", []))
        relations = frozenset((str(s).lower(), str(t).lower(), str(k)) for s, t, k in kg.get("relations", []))
    except (TypeError, ValueError):
        return None
    return entities, relations


def overlap(a: frozenset, b: frozenset, metric: str) -> float:
    union = len(a | b)
    if union == 0:
        return 1.0
    inter = len(a & b)
    return inter / union if metric == "jaccard" else 2 * inter / (len(a) + len(b))


def reference_text(gt: dict) -> tuple[str, bool] | None:
    """The reference text and whether it is reasoning (then the model's reasoning is compared)."""
    reasoning = gt.get("reasoning")
    if isinstance(reasoning, str):
        return reasoning, True
    for key in ("answer", "report", "explanation"):
        value = gt.get(key)
        if isinstance(value, str):
            think = tag_section(value, "think", allow_unclosed=False)
            return (value, False) if think is None else (think, True)
    return None


def _check(params: dict) -> None:
    extractor = params.get("extractor", "rule")
    if extractor not in EXTRACTORS:
        raise ValueError(f"kg_jaccard params.extractor must be one of {', '.join(EXTRACTORS)}, got {extractor!r}")
    if params.get("metric", "jaccard") not in ("jaccard", "f1"):
        raise ValueError(f"kg_jaccard params.metric must be jaccard or f1, got {params['metric']!r}")
    if extractor == "server":
        ServerSettings.from_config(params.get("server"), "reward.server")


@register(
    "kg_jaccard", low=0.0, high=1.0, components=("entities", "relations", "server_failed"), check_config=_check
)
def kg_jaccard_reward(
    text: str,
    gt: dict,
    extra_info: dict,
    metric: str = "jaccard",
    extractor: str = "rule",
    server: dict | None = None,
    fallback_score: float = 0.0,
) -> dict:
    """1/2 (entity overlap + relation overlap); components are the two overlaps."""
    truth = graph_from_data(gt.get("kg"))
    found = None if truth is not None else reference_text(gt)
    if truth is None and found is None:
        return {"score": 0.0, "reason": f"ground truth has no graph or reference text (task {gt.get('task')!r})"}
    reference, of_reasoning = found if found is not None else (None, True)
    prediction = reasoning_section(text) if of_reasoning else answer_section(text)
    if extractor == "server":
        texts = [prediction] if truth is not None else [prediction, reference]
        results = post_scores(ServerSettings.from_config(server, "reward.server"), "radgraph_graph", [{"text": t} for t in texts])
        if results is None:
            return {"score": fallback_score, "server_failed": 1.0, "reason": "reward server unavailable"}
        graphs = [graph_from_data(r) or (frozenset(), frozenset()) for r in results]
    else:
        graphs = [rule_graph(prediction)] if truth is not None else [rule_graph(prediction), rule_graph(reference)]
    pred, truth = graphs[0], truth if truth is not None else graphs[1]
    entities, relations = overlap(pred[0], truth[0], metric), overlap(pred[1], truth[1], metric)
    return {"score": (entities + relations) / 2, "entities": entities, "relations": relations, "server_failed": 0.0}
