"""`label_f1`: abnormality classification (RadVLM's `generate_instruction_abnormalities` task).

Ground truth is `{"task": "classification", "labels": [...]}` ([] = no finding), written by prep
with `radgrpo.data.answers.answer_labels`; the model's `<answer>` is read with the same function, so
an answer in the training data's own words scores 1.0. Score: F1 of the two label sets; a correct
"no finding" (both empty) is 1.0, one side empty and the other not is 0.0. RadVLM's evaluation of
this task (`radvlm/evaluation/compute_metrics_tasks.py evaluate_classification`) differs on purpose:
it finds each label of the dataset's vocabulary as a substring of the output and reports micro/macro
F1 over the whole test set; a per-sample reward has no vocabulary, so it compares label sets.
"""

from __future__ import annotations

from radgrpo.data.answers import answer_labels
from radgrpo.rewards.registry import register
from radgrpo.rewards.text import answer_section


@register("label_f1", low=0.0, high=1.0, components=("precision", "recall", "n_pred"))
def label_f1_reward(text: str, gt: dict, extra_info: dict) -> dict:
    """F1 between the labels the answer lists and the ground-truth labels."""
    truth = gt.get("labels")
    if not isinstance(truth, (list, tuple)):
        return {"score": 0.0, "precision": 0.0, "recall": 0.0, "n_pred": 0.0,
                "reason": f"ground truth has no label list (task {gt.get('task')!r})"}
    expected = {str(label).strip().lower() for label in truth}
    predicted = set(answer_labels(answer_section(text)))
    if not expected and not predicted:
        return {"score": 1.0, "precision": 1.0, "recall": 1.0, "n_pred": 0.0}
    hits = len(expected & predicted)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(expected) if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"score": f1, "precision": precision, "recall": recall, "n_pred": float(len(predicted))}
