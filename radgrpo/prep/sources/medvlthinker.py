"""MedVLThinker's MCQA trainset and eval sets (seed 002), from parquet/Arrow with image bytes.

Fields: `images` (list of images, stored as {"bytes", "path"}), `question`, `options` (dict letter
-> text, or its JSON string), `answer_label`, `answer`, `reasoning` (optional), `dataset_name`,
`dataset_index`. Task `mcqa` keeps the options in the prompt (seed 002's `medical_mcqa`); task `vqa`
asks the bare question and expects the answer text.
"""

from __future__ import annotations

from typing import Any

from radgrpo.prep.errors import Drop
from radgrpo.prep.sample import Sample, check_unicode, require_text, split_image_tags
from radgrpo.prep.sources.common import (answer_label, closed_or_open, image_refs, mcqa_question,
                                         parse_options)

TASKS = ("mcqa", "vqa")


def to_sample(key: Any, record: Any, options) -> Sample:
    if not isinstance(record, dict):
        raise Drop("not_a_record", f"record is {type(record).__name__}, not an object")
    dataset = record.get("dataset_name") or options.dataset_name or "medvlthinker"
    if not isinstance(dataset, str):
        raise Drop("bad_field_type", "dataset_name is not a string")
    if options.dataset_filter is not None and dataset not in options.dataset_filter:
        raise Drop("dataset_filter", dataset)
    index = record.get("dataset_index")
    rid = f"{dataset}-{index}" if index is not None else f"{dataset}-record-{key}"

    images = image_refs(record.get("images"))
    question = split_image_tags(require_text(record.get("question"), "empty_question", "question"),
                                len(images))
    choices = parse_options(record.get("options"))
    label = answer_label(record.get("answer_label"), choices)
    answer = record.get("answer") if isinstance(record.get("answer"), str) else None
    answer = (answer or "").strip() or choices[label]
    reasoning = record.get("reasoning") if isinstance(record.get("reasoning"), str) else ""
    check_unicode(rid, dataset, question, answer, reasoning, *choices.values())

    if options.task == "mcqa":
        truth = {"label": label, "answer": answer, "options": choices}
        if reasoning.strip():
            truth["explanation"] = reasoning.strip()
        return Sample(id=rid, dataset=dataset, task="mcqa", question=mcqa_question(question, choices),
                      answer=label, images=images, truth=truth, answer_type="mcqa", label=label)
    truth = {"answer": answer}
    if reasoning.strip():
        truth["reasoning"] = reasoning.strip()
    return Sample(id=rid, dataset=dataset, task="vqa", question=question, answer=answer,
                  images=images, truth=truth, answer_type=closed_or_open(answer), label=label)
