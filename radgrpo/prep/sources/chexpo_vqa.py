"""CheXPO-v2 / MIMIC-VQA-CoT chat records (seed 003), as JSON list or JSON Lines.

A record is `{"messages": [{"role": "user", ...}, {"role": "assistant",
"content": "<think>...</think><answer>...</answer>"}], "image": "relative path or base64",
"question": ..., "answer": ...}`. The short `answer` is the ground truth (what seed 003's `r1v_acc`
compares), the assistant's `<think>` text is kept as reference reasoning. Records without
`question`/`answer` fall back to the user message and the assistant's `<answer>` span.
"""

from __future__ import annotations

import re
from typing import Any

from radgrpo.prep.errors import Drop
from radgrpo.prep.sample import Sample, check_unicode, require_text, split_image_tags
from radgrpo.prep.sources.common import closed_or_open, image_refs, record_id

TASKS = ("vqa",)

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def _message(messages: Any, role: str) -> str | None:
    if messages is None:
        return None
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
        raise Drop("bad_conversations", "messages must be a list of {role, content}")
    for m in messages:
        if m.get("role") == role:
            content = m.get("content")
            if content is not None and not isinstance(content, str):
                raise Drop("bad_field_type", f"{role} content is {type(content).__name__}")
            return content
    return None


def to_sample(key: Any, record: Any, options) -> Sample:
    if not isinstance(record, dict):
        raise Drop("not_a_record", f"record is {type(record).__name__}, not an object")
    dataset = record.get("dataset") or options.dataset_name or "mimic-vqa-cot"
    if options.dataset_filter is not None and dataset not in options.dataset_filter:
        raise Drop("dataset_filter", dataset)
    rid = record_id(record.get("id"), key)
    messages = record.get("messages")
    reply = _message(messages, "assistant") or ""
    images = image_refs(record.get("image", record.get("images")))
    question = record.get("question") or _message(messages, "user")
    question = split_image_tags(require_text(question, "empty_question", "question"), len(images))
    answer = record.get("answer")
    if answer is None and _ANSWER.search(reply):
        answer = _ANSWER.search(reply).group(1)
    answer = require_text(answer, "empty_answer", "answer")
    think = _THINK.search(reply)
    check_unicode(rid, str(dataset), question, answer, reply)

    truth = {"answer": answer}
    if think and think.group(1).strip():
        truth["reasoning"] = think.group(1).strip()
    return Sample(id=rid, dataset=str(dataset), task="vqa", question=question, answer=answer,
                  images=images, truth=truth, answer_type=closed_or_open(answer))
