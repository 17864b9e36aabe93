"""Prompt wording per task and style, shared by the synthetic generator and the converters.

Styles: `plain` asks for the answer only; `think_answer` asks for reasoning in <think></think> and the
answer in <answer></answer>, the format the seed projects reward (VLM-R1, MedVLM-R1, RadVLM-GRPO).
"""

from __future__ import annotations

PROMPT_STYLES = ("plain", "think_answer")

_GROUNDING_FORMAT = (
    "Answer with the bounding boxes as [x1, y1, x2, y2] normalised to 0-1, "
    "or 'no finding' if there is no abnormality."
)
_THINK_ANSWER = "First think inside <think></think>, then give the final answer inside <answer></answer>."


def grounding_prompt(question: str, style: str) -> str:
    """The user turn (after the <image> placeholder) for a grounding question."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")
    text = f"{question} {_GROUNDING_FORMAT}"
    return f"{text} {_THINK_ANSWER}" if style == "think_answer" else text
