"""`mcqa`: answer-letter accuracy for multiple-choice questions, in [0, 1].

The letter is read, in order, from `\\boxed{...}` (verl geo3k), the `<answer>` / `<SOLUTION>`
section (MedVLM-R1, MedVLThinker, seed 004), "Answer: B" / "the answer is (B)", else the text after
`</think>`. Within that text a leading letter ("B", "(B)", "B. Pneumonia", "B - ..."), the option
text alone (MedVLThinker accepts "{label}. {answer}", "{label}" or "{answer}"), or a single
standalone letter followed by punctuation or the end (VLM-R1's `extract_choice` pattern) counts;
"A" and "I" starting a sentence are prose, not choices. Two different letters and no leading
one is ambiguous and gets 0, so listing every option is never rewarded.
"""

from __future__ import annotations

import re

from radgrpo.rewards.registry import register
from radgrpo.rewards.text import answer_section, normalise, tag_section

_LETTERS = "ABCDEFGHIJ"
_BOXED = re.compile(r"\\boxed\{([^{}]{0,200})\}")
_ANSWER_IS = re.compile(r"[Aa]nswer\s*(?:is|:)?\s*[:\-]?\s*\(?\**([A-J])\**\)?(?![A-Za-z])")
_LEADING = re.compile(r"\s*(?:option\s+)?[\(\[\*]*([A-J])[\)\]\*]*(\s*(?:[\.\):;\-]|$)|\s+)")
_STANDALONE = re.compile(r"(?<![A-Za-z])([A-J])(?=[\.\,\?\!\:\;\)]|$)")
_SCAN_CHARS = 4000  # an answer that needs more text than this to state a letter has no clear letter


def gold_label(gt: dict) -> str | None:
    """The correct letter: `label`, else a one-letter `answer` (a bare-string ground truth)."""
    for key in ("label", "answer", "correct_answer"):
        value = gt.get(key)
        if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in _LETTERS:
            return value.strip().upper()
    return None


def extract_choice(text: str, options: dict | None = None) -> str | None:
    """The option letter the output chooses, or None (see module docstring for the rules)."""
    for candidate in _candidates(text):
        letter = _letter_in(candidate[:_SCAN_CHARS], options)
        if letter is not None:
            return letter
    return None


def _candidates(text: str):
    """Where the answer may be, most explicit first; lazily, as the first hit usually decides."""
    if "\\boxed{" in text:
        boxed = _BOXED.findall(text[-_SCAN_CHARS:])
        if boxed:
            yield boxed[-1]
    for tag in ("answer", "SOLUTION"):
        if f"<{tag}>" in text:
            section = tag_section(text, tag)
            if section is not None:
                yield section
    tail = answer_section(text, tags=())
    if "nswer" in tail:
        stated = _ANSWER_IS.findall(tail[-_SCAN_CHARS:])
        if stated:
            yield stated[-1]
    yield tail


def _letter_in(text: str, options: dict | None) -> str | None:
    bare = text.strip().strip("()[]*.")
    if len(bare) == 1 and bare.upper() in _LETTERS:  # "b", "(c)"
        return bare.upper()
    leading = _LEADING.match(text)
    said = normalise(text) if options else ""
    if leading:
        letter = leading.group(1)
        # "B Pneumonia" counts, "A large effusion ..." or "I think ..." is prose, not a choice.
        if not leading.group(2).isspace():
            return letter
        option = normalise(str(options.get(letter, ""))) if options else ""
        if option and said[2:].startswith(option):
            return letter
    if options:
        for letter, option in options.items():
            if said and said == normalise(str(option)):
                return str(letter).upper()
    found = set(_STANDALONE.findall(text))
    return found.pop() if len(found) == 1 else None


@register("mcqa", low=0.0, high=1.0, components=("extracted",))
def mcqa_reward(text: str, gt: dict, extra_info: dict) -> dict:
    """1.0 when the chosen letter is the gold label; component `extracted` is 1 when any letter was read."""
    gold = gold_label(gt)
    if gold is None:
        return {"score": 0.0, "reason": f"ground truth has no answer letter (task {gt.get('task')!r})"}
    options = gt.get("options") if isinstance(gt.get("options"), dict) else None
    choice = extract_choice(text, options)
    return {"score": float(choice == gold), "extracted": float(choice is not None)}
