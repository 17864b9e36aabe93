"""The one prompt mechanism: chat prompts from a `conf/prompt/<style>.yaml` template, used by
radgrpo-prep (`prompt=<style>`), the synthetic training data (`radgrpo prompt=<style>`) and the tiny
model's warm start, so a model is warm-started, trained and evaluated on the same wording.

A template has an optional `system` message, a `user` format string with `{question}` and
`{instruction}`, and per-task `instructions` (e.g. the reasoning style's `<think>/<answer>` request,
or how to write boxes). Styles: `plain` (the question as the source wrote it, plus a short per-task
hint) and `think` (reason in `<think>`, answer in `<answer>`: VLM-R1, MedVLM-R1, RadVLM-GRPO).
Image tags always lead the first user message - the layout verl's `RLHFDataset` and the Qwen-VL chat
templates expect - so sources never have to agree on where their tags were.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from radgrpo import CONF_DIR

PROMPT_DIR = CONF_DIR / "prompt"


def prompt_styles() -> list[str]:
    """The style names: the options of the `prompt` config group."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class PromptTemplate:
    user: str = "{question}"
    system: str | None = None
    instructions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        try:
            self.user.format(question="", instruction="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"prompt.user may only use {{question}} and {{instruction}}: {exc}") from None
        object.__setattr__(self, "_memo", {})

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> PromptTemplate:
        """The template of a composed `prompt` config (a `conf/prompt/*.yaml` mapping)."""
        cfg = cfg or {}
        return cls(user=cfg.get("user") or "{question}", system=cfg.get("system"),
                   instructions=dict(cfg.get("instructions") or {}))

    def render(self, question: str, task: str, n_images: int,
               history: Sequence[Mapping[str, str]] = ()) -> list[dict[str, str]]:
        """The chat messages of one row: system, earlier turns, then the question.

        Single-turn prompts are memoised by (question, task, image count): RadVLM questions come
        from templates, so most rows reuse a rendered prompt (callers must not mutate it).
        """
        if history:
            return self._render(question, task, n_images, history)
        key = (question, task, n_images)
        messages = self._memo.get(key)
        if messages is None:
            if len(self._memo) >= 1 << 16:
                self._memo.clear()
            messages = self._memo[key] = self._render(question, task, n_images, ())
        return messages

    def _render(self, question: str, task: str, n_images: int, history) -> list[dict[str, str]]:
        instruction = self.instructions.get(task, "") or ""
        final = self.user.format(question=question, instruction=instruction).strip()
        turns = [dict(m) for m in history] + [{"role": "user", "content": final}]
        turns[0]["content"] = "<image>" * n_images + "\n" + turns[0]["content"]
        return ([{"role": "system", "content": self.system}] if self.system else []) + turns


def load_prompt(style: str) -> PromptTemplate:
    """The template of `conf/prompt/<style>.yaml` (outside a Hydra app, e.g. the warm start)."""
    from omegaconf import OmegaConf

    path = PROMPT_DIR / f"{style}.yaml"
    if not path.exists():
        raise ValueError(f"unknown prompt style {style!r}; choose one of: {', '.join(prompt_styles())}")
    return PromptTemplate.from_mapping(OmegaConf.to_container(OmegaConf.load(path), resolve=True))


def chat_content(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Messages with `<image>` tags as processor content parts, as verl's `RLHFDataset._build_messages`
    turns a row's prompt into what `processor.apply_chat_template` is given."""
    return [{"role": m["role"], "content": [{"type": "image"} if p == "<image>" else {"type": "text", "text": p}
                                            for p in re.split("(<image>)", m["content"]) if p]}
            for m in messages]
