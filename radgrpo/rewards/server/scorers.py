"""Pluggable scorers of the reward server: functions from a batch of item dicts to result dicts.

A scorer is chosen by name (`SCORERS`) or given as `module:function` on the command line (the
function receives the server options and returns the scorer), so a new model-based reward needs
one function and no server change.
- `text_similarity`: token F1 of `prediction` vs `reference`; tiny and deterministic, for tests and
  smoke checks of a deployment.
- `radcliq_components`: RadCliQ's model-based inputs (rajpurkarlab/CXR-Report-Metric): RadGraph F1
  (mean of entity and relation F1), BERTScore with distilroberta-base rescaled with its baseline,
  cosine of CheXbert embeddings. Needs the `radgraph`, `bert-score` and `f1chexbert` packages and
  local model paths; they are not installable in radgrpo's CPU environment, so this is not run by
  the test suite.
- `radgraph_graph`: RadGraph entities and relations of `text`, for `kg_jaccard` with
  `extractor: server`.
"""

from __future__ import annotations

import importlib
from typing import Callable

from radgrpo.rewards.text import token_f1, words

Scorer = Callable[[list[dict]], list[dict]]


def text_similarity(options: dict) -> Scorer:
    def score(items: list[dict]) -> list[dict]:
        return [{"score": token_f1(words(str(i.get("prediction", ""))), words(str(i.get("reference", ""))))} for i in items]

    return score


def _require(options: dict, key: str) -> str:
    path = options.get(key)
    if not path:
        raise SystemExit(f"--{key} is not set: give the local path of the {key} model")
    return str(path)


def _radgraph(options: dict):
    from radgraph import RadGraph

    return RadGraph(model_type=options.get("radgraph_type") or "radgraph", model_cache_dir=_require(options, "radgraph"))


def radcliq_components(options: dict) -> Scorer:
    import torch
    from bert_score import BERTScorer
    from f1chexbert import F1CheXbert
    from radgraph import F1RadGraph

    radgraph = F1RadGraph(reward_level="all", model_type="radgraph", model_cache_dir=_require(options, "radgraph"))
    bertscore = BERTScorer(
        model_type=_require(options, "bertscore"), num_layers=5, lang="en", rescale_with_baseline=True, idf=False
    )
    chexbert = F1CheXbert(chexbert_checkpoint=_require(options, "chexbert"))

    def score(items: list[dict]) -> list[dict]:
        predictions = [str(i.get("prediction", "")) for i in items]
        references = [str(i.get("reference", "")) for i in items]
        _, per_pair, _, _ = radgraph(hyps=predictions, refs=references)  # [(entity F1, ..., relation F1)]
        _, _, bert_f1 = bertscore.score(predictions, references)
        pred_emb = torch.stack([chexbert.get_embeddings(p) for p in predictions])
        ref_emb = torch.stack([chexbert.get_embeddings(r) for r in references])
        semb = torch.nn.functional.cosine_similarity(pred_emb, ref_emb, dim=-1)
        return [
            {"radgraph": (float(rg[0]) + float(rg[2])) / 2, "bertscore": float(bs), "semb": float(se)}
            for rg, bs, se in zip(per_pair, bert_f1.tolist(), semb.tolist())
        ]

    return score


def radgraph_graph(options: dict) -> Scorer:
    model = _radgraph(options)

    def score(items: list[dict]) -> list[dict]:
        annotations = model([str(i.get("text", "")) for i in items])
        out = []
        for k in range(len(items)):
            graph = annotations.get(str(k), {}).get("entities", {})
            entities = [[e["tokens"], e["label"]] for e in graph.values()]
            relations = [[e["tokens"], graph[target]["tokens"], kind] for e in graph.values() for kind, target in e.get("relations", []) if target in graph]
            out.append({"entities": entities, "relations": relations})
        return out

    return score


SCORERS = {"text_similarity": text_similarity, "radcliq_components": radcliq_components, "radgraph_graph": radgraph_graph}


def load_scorer(spec: str, options: dict) -> tuple[str, Scorer]:
    """(name, scorer) for a registered name or a `module:function` factory."""
    if spec in SCORERS:
        return spec, SCORERS[spec](options)
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"unknown scorer {spec!r}: use one of {', '.join(SCORERS)} or module:function")
    return attr, getattr(importlib.import_module(module), attr)(options)
