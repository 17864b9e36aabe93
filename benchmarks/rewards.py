"""Reward throughput: each rule-based reward on 4,096 completions (512 prompts x 8 rollouts, one GRPO
step) against a straightforward per-sample reference implementation of the same semantics.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rewards.py [--prompts 512] [--rollouts 8] [--repeat 3]

Prints completions/s for radgrpo and the reference and their ratio (radgrpo time / reference time;
< 1 is faster), best CPU time of `--repeat` runs, one core. Targets (issue 4): `iou` + `format` on the 4,096
in < 100 ms, and no reward slower than 2x its reference although radgrpo reads more formats. The
references are what one writes in a reward file without care for speed: regex extraction, numpy +
scipy Hungarian for every sample, rouge-score / sacrebleu calls, keyword loops.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter

import numpy as np
from rouge_score import rouge_scorer
from sacrebleu import sentence_bleu
from scipy.optimize import linear_sum_assignment

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import score
from radgrpo.rewards.terms import ABNORMALITY_OF, ANATOMY_IMPORTANCE, ANATOMY_OF, DESCRIPTORS
from radgrpo.rewards.verl_entry import compute_score

WORDS = (
    "the heart size is normal there is a small left pleural effusion with adjacent atelectasis no pneumothorax "
    "lungs are clear mild cardiomegaly right lower lobe consolidation concerning for pneumonia stable "
    "mediastinal contours osseous structures unremarkable first assess then consider differential versus"
).split()
FINDINGS = ["Pleural effusion", "Cardiomegaly", "Nodule/Mass", "Consolidation", "Atelectasis", "Pneumothorax"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _box(rng: random.Random) -> list[float]:
    x1, y1 = rng.uniform(0, 0.6), rng.uniform(0, 0.6)
    return [round(x1, 3), round(y1, 3), round(x1 + rng.uniform(0.05, 0.35), 3), round(y1 + rng.uniform(0.05, 0.35), 3)]


def make_batch(prompts: int, rollouts: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """(completion, ground truth) pairs per task: grounding, report, mcqa, vqa; realistic lengths
    (a 40-120 word <think>, answers of a few boxes / 40-80 words / a letter)."""
    rng = random.Random(seed)
    tasks: dict[str, list[tuple[str, str]]] = {"grounding": [], "report": [], "mcqa": [], "vqa": []}
    for _ in range(prompts):
        boxes = [_box(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
        g_gt = encode_ground_truth("grounding", boxes=boxes, labels=[rng.choice(FINDINGS)] * len(boxes))
        report = " ".join(_sentence(rng, rng.randint(6, 14)) for _ in range(rng.randint(3, 6)))
        r_gt = encode_ground_truth("report", report=report)
        m_gt = encode_ground_truth(
            "mcqa", label=rng.choice("ABCD"), answer="Pneumonia", options={"A": "Normal", "B": "Pneumonia", "C": "Fracture", "D": "Mass"},
            explanation=_sentence(rng, 12), evidence=report,
        )
        v_gt = encode_ground_truth("vqa", answer=rng.choice(["yes", "no", "left pleural effusion"]), reasoning=_sentence(rng, 30))
        for _ in range(rollouts):
            think = " ".join(_sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(3, 6)))
            pred = [[round(v + rng.uniform(-0.05, 0.05), 3) for v in b] for b in boxes] or ([] if rng.random() < 0.5 else [_box(rng)])
            answer = ", ".join(json.dumps(b) for b in pred) if pred else "No abnormalities detected."
            tasks["grounding"].append((f"<think>{think}</think>\n<answer>{answer}</answer>", g_gt))
            tasks["report"].append((f"<think>{think}</think>\n<answer>{' '.join(_sentence(rng, rng.randint(6, 14)) for _ in range(4))}</answer>", r_gt))
            letter = rng.choice("ABCD")
            tasks["mcqa"].append((f"<start_working_out>{think}<end_working_out><SOLUTION>{letter} - {rng.choice(WORDS)}</SOLUTION>" if rng.random() < 0.5 else f"<think>{think}</think><answer>{letter}</answer>", m_gt))
            tasks["vqa"].append((f"<think>{think}</think><answer>{rng.choice(['yes', 'no', 'left pleural effusion', 'effusion on the left'])}</answer>", v_gt))
    return tasks


# ---- straightforward references (same semantics, no care for speed) ----
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BRACKET = re.compile(r"\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]")
_FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def ref_iou(text: str, gt: str) -> float:
    truth = json.loads(gt)["boxes"]
    m = _ANSWER.search(text)
    answer = m.group(1) if m else text
    pred = [[float(v) for v in b] for b in _BRACKET.findall(answer)]
    if not truth:
        return 0.8 if not pred and re.search(r"no abnormalit|no finding|normal", answer, re.I) else 0.0
    if not pred:
        return 0.0
    p, g = np.array(pred)[:, None], np.array(truth)[None]
    iw = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    inter = iw * ih
    union = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1]) + (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1]) - inter
    matrix = inter / union
    rows, cols = linear_sum_assignment(-matrix)
    return float(2 * matrix[rows, cols].sum() / (len(pred) + len(truth)))


def ref_format(text: str, gt: str) -> float:
    return 1.0 if _FORMAT.fullmatch(text.strip()) else 0.0


def _answer(text: str) -> str:
    m = _ANSWER.search(text)
    return m.group(1) if m else text


def ref_bleu(text: str, gt: str) -> float:
    return sentence_bleu(_answer(text), [json.loads(gt)["report"]]).score / 100


_ROUGE = rouge_scorer.RougeScorer(["rougeL"])


def ref_rouge_l(text: str, gt: str) -> float:
    return _ROUGE.score(json.loads(gt)["report"], _answer(text))["rougeL"].fmeasure


def _f1(a: list[str], b: list[str]) -> float:
    common = sum((Counter(a) & Counter(b)).values())
    return 0.0 if common == 0 else 2 * common / (len(a) + len(b))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def ref_report_f1(text: str, gt: str) -> float:
    return _f1(_words(_answer(text)), _words(json.loads(gt)["report"]))


def _letter(text: str) -> str | None:
    m = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL) or re.search(r"<SOLUTION>(.*?)</SOLUTION>", text, re.DOTALL)
    found = re.match(r"\s*\(?([A-J])\b", m.group(1) if m else text)
    return found.group(1) if found else None


def ref_mcqa(text: str, gt: str) -> float:
    return float(_letter(text) == json.loads(gt)["label"])


def ref_medgemma(text: str, gt: str) -> float:
    truth = json.loads(gt)
    plain = re.sub(r"<[^>]+>", " ", text)
    evidence = {w for w in _words(truth["evidence"]) if len(w) >= 4} & {w for w in _words(plain) if len(w) >= 4}
    fmt = re.fullmatch(r"\s*<start_working_out>.*?<end_working_out>\s*<SOLUTION>.*?</SOLUTION>\s*", text, re.DOTALL)
    return (
        float(_letter(text) == truth["label"]) + 0.6 * _f1(_words(plain), _words(truth["explanation"]))
        + 0.2 * min(1.0, len(evidence) / 3) + 0.1 * bool(fmt) + 0.1 * (len(text.strip()) <= 220)
    )


def ref_r1v_acc(text: str, gt: str) -> float:
    truth = re.sub(r"</?answer>", "", json.loads(gt)["answer"]).strip().lower()
    pred = _answer(text).strip().lower()
    return float(pred == truth or _f1(_words(pred), _words(truth)) >= 0.5)


_ANAT = {t: r for t, r in ANATOMY_OF.items()}
_OBS = {t: k for t, k in ABNORMALITY_OF.items()}


def _naive_graph(text: str):
    entities, relations = set(), set()
    for sentence in re.split(r"[.;\n]+", text.lower()):
        tokens = f" {' '.join(_words(sentence))} "
        anatomy = {t for t in _ANAT if f" {t} " in tokens}
        obs = {t for t in _OBS if f" {t} " in tokens}
        entities |= {(a, "ANAT") for a in anatomy} | {(o, "OBS") for o in obs}
        relations |= {(o, a) for o in obs for a in anatomy}
    return entities, relations


def _jaccard(a, b) -> float:
    return 1.0 if not (a | b) else len(a & b) / len(a | b)


def ref_kg_jaccard(text: str, gt: str) -> float:
    m = re.search(r"<think>(.*?)</think>", text, re.DOTALL)
    pe, pr = _naive_graph(m.group(1) if m else text)
    te, tr = _naive_graph(json.loads(gt)["reasoning"])
    return (_jaccard(pe, te) + _jaccard(pr, tr)) / 2


def ref_enhanced_grounding(text: str, gt: str) -> float:
    spatial = ref_iou(text, gt)
    said = text.lower()
    tokens = f" {' '.join(_words(said))} "
    semantic = (any(f" {t} " in tokens for t in _OBS) + any(f" {t} " in tokens for t in _ANAT)
                + any(f" {t} " in tokens for d in DESCRIPTORS.values() for t in d)) / 3
    m = re.search(r"<think>(.*?)</think>", text, re.DOTALL)
    think = m.group(1).lower() if m else ""
    reasoning = (("first" in think or "then" in think) + ("differential" in think or "versus" in think) + (len(think.split()) >= 20)) / 3 if think else 0.0
    relevance = ((spatial > 0) + ("mild" in said or "severe" in said)) / 2
    return 0.4 * spatial * max(ANATOMY_IMPORTANCE.values()) + 0.3 * semantic + 0.2 * reasoning + 0.1 * relevance


CASES = {  # reward -> (task, reference)
    "iou": ("grounding", ref_iou),
    "format": ("grounding", ref_format),
    "enhanced_grounding": ("grounding", ref_enhanced_grounding),
    "bleu": ("report", ref_bleu),
    "rouge_l": ("report", ref_rouge_l),
    "report_f1": ("report", ref_report_f1),
    "mcqa": ("mcqa", ref_mcqa),
    "medgemma": ("mcqa", ref_medgemma),
    "r1v_acc": ("vqa", ref_r1v_acc),
    "kg_jaccard": ("vqa", ref_kg_jaccard),
}


def best_time(fn, repeat: int) -> float:
    """Best CPU time of this process over `repeat` runs: on a shared machine wall time mostly
    measures the neighbours."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batch = make_batch(args.prompts, args.rollouts)
    n = args.prompts * args.rollouts
    print(f"{n} completions ({args.prompts} prompts x {args.rollouts} rollouts), best CPU time of {args.repeat}, one core")
    print(f"{'reward':<20}{'radgrpo ms':>12}{'compl/s':>12}{'reference ms':>14}{'compl/s':>12}{'ratio':>8}")
    worst = 0.0
    for name, (task, reference) in CASES.items():
        samples = batch[task]
        ours = best_time(lambda: [score(name, t, g) for t, g in samples], args.repeat)
        theirs = best_time(lambda: [reference(t, g) for t, g in samples], args.repeat)
        worst = max(worst, ours / theirs)
        print(f"{name:<20}{ours * 1e3:>12.1f}{n / ours:>12.0f}{theirs * 1e3:>14.1f}{n / theirs:>12.0f}{ours / theirs:>8.2f}")
    samples = batch["grounding"]
    terms = {"terms": [{"name": "iou", "weight": 0.9, "params": {}}, {"name": "format", "weight": 0.1, "params": {}}]}
    both = best_time(lambda: [compute_score("vindr", t, g, None, **terms) for t, g in samples], args.repeat)
    plain = best_time(lambda: [0.9 * ref_iou(t, g) + 0.1 * ref_format(t, g) for t, g in samples], args.repeat)
    print(f"{'iou+format (verl)':<20}{both * 1e3:>12.1f}{n / both:>12.0f}{plain * 1e3:>14.1f}{n / plain:>12.0f}{both / plain:>8.2f}")
    print(f"target iou+format < 100 ms: {'met' if both < 0.1 else 'MISSED'} ({both * 1e3:.1f} ms); "
          f"worst ratio {worst:.2f} (target <= 2.0: {'met' if worst <= 2.0 else 'MISSED'})")


if __name__ == "__main__":
    main()
