"""Chat prompts from a config template, with one `<image>` placeholder per image.

A template (`conf/prompt/*.yaml`) has an optional `system` message, a `user` format string with
`{question}` and `{instruction}`, and per-task `instructions` (e.g. the `<think>/<answer>` format
request of the reasoning template, or how to write boxes). Image tags always lead the first user
message - the layout verl's `RLHFDataset` and the Qwen-VL chat templates expect - so sources never
have to agree on where their tags were.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radgrpo.prep.errors import PrepError
from radgrpo.prep.sample import Sample


@dataclass(frozen=True)
class PromptTemplate:
    user: str = "{question}"
    system: str | None = None
    instructions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        try:
            self.user.format(question="", instruction="")
        except (KeyError, IndexError, ValueError) as exc:
            raise PrepError(f"prompt.user may only use {{question}} and {{instruction}}: {exc}") from None
        object.__setattr__(self, "_memo", {})

    def render(self, sample: Sample, n_images: int) -> list[dict[str, str]]:
        """The chat messages of one row: system, earlier turns, then the question.

        Single-turn prompts are memoised by (question, task, image count): RadVLM questions come
        from templates, so most rows reuse a rendered prompt (callers must not mutate it).
        """
        if sample.history:
            return self._render(sample, n_images)
        key = (sample.question, sample.task, n_images)
        messages = self._memo.get(key)
        if messages is None:
            if len(self._memo) >= 1 << 16:
                self._memo.clear()
            messages = self._memo[key] = self._render(sample, n_images)
        return messages

    def _render(self, sample: Sample, n_images: int) -> list[dict[str, str]]:
        instruction = self.instructions.get(sample.task, "") or ""
        final = self.user.format(question=sample.question, instruction=instruction).strip()
        turns = [dict(m) for m in sample.history] + [{"role": "user", "content": final}]
        turns[0]["content"] = "<image>" * n_images + "\n" + turns[0]["content"]
        return ([{"role": "system", "content": self.system}] if self.system else []) + turns
