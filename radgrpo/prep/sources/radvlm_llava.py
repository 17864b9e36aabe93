"""RadVLM's LLaVA-format instruction data (seed 001), as JSON list or LLaVA-format parquet (seed 000).

A record is `{"image": path or [paths], "conversations": [{"from": "human"|"gpt", "value": ...}],
"id": "<id_prefix>_<n>"}`. RadVLM builds ids as `f"{id_prefix}_{index}"` (`create_json_cell_llava` in
uzh-dqbm-cmi/RadVLM `radvlm/data/create_instructions.py`), and its `radvlm/data/create_llava_dataset.py`
gives each pass over a dataset a split-suffixed prefix: `vindr-cxr-train1`, `vindr-cxr-train2`,
`vindr-cxr-mono-train1` (three passes), `mscxr-train1..3`, `padchest-train1..2`, `mimic-train`,
`chexpertplus-train`, `chestima-train`, `mimic-labels-train`, `chexpert-train`, `conv-train`,
`conv-grounded-train1..4`, `conv-grounded-padchest-train1..4`; test sets (rfahrn/RadVLM's VLM-R1
test script) use `mimic-test`, `vindr-cxr-test`, ... The dataset of a record is the prefix without
that split suffix (`canonical_dataset`): `vindr-cxr`, `vindr-cxr-mono`, `mscxr`, `padchest`, `mimic`,
`mimic-labels`, `chexpertplus`, `chestima`, `chexpert`, `conv`, `conv-grounded`,
`conv-grounded-padchest` - so seed 000's `--dataset_filter vindr-cxr vindr-cxr-mono` keeps both
VinDr id styles (`vindr-cxr_12` and `vindr-cxr-train1_12`) and `data_source` names one dataset. A
`dataset` field, when present, wins (and is read the same way). The raw prefix stays in
`extra_info.id_prefix`; `dataset_filter` matches either.

The file mixes tasks without a task field, so the task is read from the conversation:
multi-turn -> conversation; boxes in the answer or a location question -> grounding; a question
about abnormalities/diseases -> classification; a report request -> report; anything else single-turn
-> conversation. Only records of the requested task become rows; the others count as `other_task`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from radgrpo.data.answers import answer_labels, says_no_finding
from radgrpo.prep.boxes import extract_boxes, has_boxes
from radgrpo.prep.errors import Drop
from radgrpo.prep.sample import Sample, check_unicode, require_text, split_image_tags
from radgrpo.prep.sources.common import image_refs, record_id

TASKS = ("grounding", "report", "classification", "conversation")

_LOCATION = re.compile(
    r"\b(locat\w*|where|position\w*|coordinates?|bounding box\w*|highlight|point out|pinpoint|"
    r"region|mark the area|detect)\b", re.IGNORECASE)
_CLASSIFICATION = re.compile(r"\b(abnormalit\w*|patholog\w*|diseases?|conditions?|diagnos\w*)\b",
                             re.IGNORECASE)
_REPORT = re.compile(r"\b(report|findings|analy[sz]\w*|describe)\b", re.IGNORECASE)
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


# a split suffix of a RadVLM id prefix; RE2-compatible, so the fast path uses the same pattern
SPLIT_SUFFIX = r"-(?:train|test|valid|val)[0-9]*$"
_SPLIT_SUFFIX = re.compile(SPLIT_SUFFIX)


def canonical_dataset(prefix: str) -> str:
    """The dataset an id prefix names: `vindr-cxr-train2` -> `vindr-cxr`, `mimic-test` -> `mimic`."""
    return _SPLIT_SUFFIX.sub("", prefix) or prefix


def dataset_of(record: dict, rid: str) -> tuple[str, str]:
    """(canonical dataset, raw prefix) of a record: its `dataset` field, else its id up to the last
    `_` (`unknown` without one)."""
    name = record.get("dataset")
    if isinstance(name, str) and name.strip():
        raw = name.strip()
    else:
        raw = rid.rsplit("_", 1)[0] if "_" in rid else "unknown"
    return canonical_dataset(raw), raw


def wanted_dataset(dataset: str, raw: str, dataset_filter) -> bool:
    """Whether `dataset_filter` (None: everything) keeps a record of this dataset / raw prefix."""
    return dataset_filter is None or dataset in dataset_filter or raw in dataset_filter


def turns_of(conversations: Any) -> list[tuple[str, str]]:
    """(role, text) pairs, checked to alternate user/assistant and to end with an answer."""
    if not isinstance(conversations, (list, tuple)) or len(conversations) < 2:
        raise Drop("bad_conversations", "conversations must be a list of at least two turns")
    turns = []
    for turn in conversations:
        if not isinstance(turn, dict) or turn.get("from") not in _ROLES:
            raise Drop("bad_conversations", "each turn needs 'from' (human/gpt) and 'value'")
        role = _ROLES[turn["from"]]
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            raise Drop("bad_conversations", f"turn {len(turns)} is {turn['from']}, expected {expected}")
        value = turn.get("value")
        if value is not None and not isinstance(value, str):
            raise Drop("bad_field_type", f"turn {len(turns)} value is {type(value).__name__}")
        turns.append((role, value))
    if turns[-1][0] != "assistant":
        turns.pop()  # a trailing question without an answer teaches nothing
    return turns


def infer_task(turns: list[tuple[str, str]]) -> str:
    """The RadVLM task a conversation belongs to (see the module docstring)."""
    if len(turns) > 2:
        return "conversation"
    answer = turns[1][1] or ""
    return "grounding" if has_boxes(answer) else question_task(turns[0][1] or "")


@lru_cache(maxsize=1 << 16)
def question_task(question: str) -> str:
    """The task a single-turn question asks for. RadVLM questions come from a few hundred
    templates, so this is memoised: 1.1M records cost a few hundred regex scans."""
    if _LOCATION.search(question):
        return "grounding"
    if _CLASSIFICATION.search(question):
        return "classification"
    if _REPORT.search(question):
        return "report"
    return "conversation"


def to_sample(key: Any, record: Any, options) -> Sample:
    if not isinstance(record, dict):
        raise Drop("not_a_record", f"record is {type(record).__name__}, not an object")
    rid = record_id(record.get("id"), key)
    dataset, raw = dataset_of(record, rid)
    turns = turns_of(record.get("conversations"))
    if not wanted_dataset(dataset, raw, options.dataset_filter):
        raise Drop("dataset_filter", dataset)
    task = infer_task(turns)
    if task != options.task:
        raise Drop("other_task", task)

    images = image_refs(record["image"] if record.get("image") is not None else record.get("images"))
    history = [(role, require_text(text, "empty_question" if role == "user" else "empty_answer",
                                   f"turn {i}")) for i, (role, text) in enumerate(turns)]
    question = split_image_tags(history[-2][1], len(images))
    answer = history[-1][1]
    earlier = [{"role": role, "content": split_image_tags(text, len(images)) if i == 0 else text}
               for i, (role, text) in enumerate(history[:-2])]
    check_unicode(rid, dataset, question, answer, *(m["content"] for m in earlier))
    if not question:
        raise Drop("empty_question", "the question is only <image> tags")

    sample = Sample(id=rid, dataset=dataset, task=task, question=question, answer=answer,
                    images=images, history=earlier, id_prefix=raw)
    _fill_truth(sample)
    return sample


def _fill_truth(sample: Sample) -> None:
    """Ground truth and stratification keys per task, from the reference answer."""
    answer = sample.answer
    if sample.task == "grounding":
        boxes = extract_boxes(answer)
        if not boxes and not says_no_finding(answer):
            raise Drop("no_boxes", "grounding answer has no box and no 'no finding' statement")
        sample.truth = {"boxes": boxes}
        sample.answer_type = "no_finding" if not boxes else "single_box" if len(boxes) == 1 else "multi_box"
    elif sample.task == "classification":
        labels = answer_labels(answer)
        sample.truth = {"labels": labels}
        sample.answer_type = "normal" if not labels else "abnormal"
        sample.label = labels[0] if labels else "no finding"
    elif sample.task == "report":
        sample.truth = {"report": answer}
        sample.answer_type = "report"
    else:
        sample.truth = {"answer": answer}
        sample.answer_type = "grounded" if has_boxes(answer) else "open"
