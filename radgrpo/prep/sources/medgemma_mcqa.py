"""The MedGemma GRPO MCQA JSON (seed 004): a dict of sample_id -> record.

Record fields: `question`, `options` (["A. Normal", ...] or a dict), `correct_answer` ("B"),
`correct_answer_explanation`, `ImagePath` ([paths] or a path), `Indication`, `Findings`,
`Impression`. The explanation and the report (Findings + Impression) travel in the ground truth
because seed 004's reward scores explanation token-F1 and evidence use against them.
"""

from __future__ import annotations

from typing import Any

from radgrpo.prep.errors import Drop
from radgrpo.prep.sample import Sample, check_unicode, require_text, split_image_tags
from radgrpo.prep.sources.common import answer_label, image_refs, mcqa_question, parse_options, record_id

TASKS = ("mcqa", "vqa")


def _text(record: dict, field: str) -> str:
    value = record.get(field)
    return value.strip() if isinstance(value, str) else ""


def to_sample(key: Any, record: Any, options) -> Sample:
    if not isinstance(record, dict):
        raise Drop("not_a_record", f"record is {type(record).__name__}, not an object")
    dataset = options.dataset_name or "medgemma-mcqa"
    rid = record_id(key if isinstance(key, str) else record.get("id"), key)
    images = image_refs(record.get("ImagePath", record.get("image")))
    question = split_image_tags(require_text(record.get("question"), "empty_question", "question"),
                                len(images))
    choices = parse_options(record.get("options"))
    label = answer_label(record.get("correct_answer"), choices)
    explanation = _text(record, "correct_answer_explanation")
    indication = _text(record, "Indication")
    evidence = " ".join(t for t in (_text(record, "Findings"), _text(record, "Impression")) if t)
    check_unicode(rid, question, explanation, indication, evidence, *choices.values())
    if options.include_context and indication:
        question = f"Indication: {indication}\n{question}"

    if options.task == "mcqa":
        truth = {"label": label, "answer": choices[label], "options": choices}
        truth.update({k: v for k, v in (("explanation", explanation), ("evidence", evidence)) if v})
        return Sample(id=rid, dataset=dataset, task="mcqa", question=mcqa_question(question, choices),
                      answer=label, images=images, truth=truth, answer_type="mcqa", label=label)
    truth = {"answer": choices[label]}
    if explanation:
        truth["reasoning"] = explanation
    return Sample(id=rid, dataset=dataset, task="vqa", question=question, answer=choices[label],
                  images=images, truth=truth, answer_type="open", label=label)
