"""`green`: the GREEN report score (Ostmeier et al. 2024, StanfordAIMI/GREEN), in [0, 1], judged by
an LLM behind any OpenAI-compatible chat endpoint (e.g. vLLM serving GREEN-RadLlama2-7b).

The judge counts clinically significant errors of six kinds (a-f below) and matched findings;
GREEN = matched / (matched + sum of significant errors), and 0 when nothing matched - the
`compute_green` rule of the GREEN package. The prompt is GREEN's. The judge URL, model name and
timeout come from the reward config's `judge` mapping; an unreachable judge or an unparseable reply
gives `fallback_score` with `judge_failed` = 1.
"""

from __future__ import annotations

import re

from radgrpo.rewards.client import ServerSettings, post_json, record_failure
from radgrpo.rewards.registry import register
from radgrpo.rewards.text import answer_section
from radgrpo.rewards.text_metrics import reference_text

JUDGE = "an OpenAI-compatible judge endpoint (e.g. vLLM serving GREEN-RadLlama2-7b)"
SIGNIFICANT = "[Clinically Significant Errors]"
INSIGNIFICANT = "[Clinically Insignificant Errors]"
MATCHED = "[Matched Findings]"

PROMPT = """Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology report composed by expert radiologists.

    Process Overview: You will be presented with:

    1. The criteria for making a judgment.
    2. The reference radiology report.
    3. The candidate radiology report.
    4. The desired format for your assessment.

    1. Criteria for Judgment:

    For each candidate report, determine:

    The count of clinically significant errors.
    The count of clinically insignificant errors.

    Errors can fall into one of these categories:

    a) False report of a finding in the candidate.
    b) Missing a finding present in the reference.
    c) Misidentification of a finding's anatomic location/position.
    d) Misassessment of the severity of a finding.
    e) Mentioning a comparison that isn't in the reference.
    f) Omitting a comparison detailing a change from a prior study.
    Note: Concentrate on the clinical findings rather than the report's writing style. Evaluate only the findings that appear in both reports.

    2. Reference Report:
    {reference}

    3. Candidate Report:
    {candidate}

    4. Reporting Your Assessment:

    Follow this specific format for your output, even if no errors are found:
    ```
    [Explanation]:
    <Explanation>

    [Clinically Significant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Clinically Insignificant Errors]:
    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>
    ....
    (f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>

    [Matched Findings]:
    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>
    ```
"""

_COUNT = re.compile(r"^\s*\(([a-f])\)[^:\n]*:\s*(\d+)", re.MULTILINE)
_FIRST_NUMBER = re.compile(r"\d+")


def _section(reply: str, header: str) -> str | None:
    start = reply.find(header)
    if start < 0:
        return None
    start += len(header)
    ends = [i for i in (reply.find(h, start) for h in (SIGNIFICANT, INSIGNIFICANT, MATCHED)) if i >= 0]
    return reply[start : min(ends)] if ends else reply[start:]


def parse_green(reply: str) -> tuple[dict[str, int], int] | None:
    """Significant error counts by kind letter (a-f) and the matched-findings count of one judge
    reply, or None when either section is missing."""
    significant, matched = _section(reply, SIGNIFICANT), _section(reply, MATCHED)
    if significant is None or matched is None:
        return None
    counts = {letter: 0 for letter in "abcdef"}
    for letter, count in _COUNT.findall(significant):
        counts[letter] = int(count)
    number = _FIRST_NUMBER.search(matched)
    return counts, int(number.group()) if number else 0


def green_score(counts: dict[str, int], matched: int) -> float:
    """GREEN = matched / (matched + significant errors); 0 when no finding matched."""
    return 0.0 if matched == 0 else matched / (matched + sum(counts.values()))


def _check(params: dict) -> None:
    judge = params.get("judge") or {}
    ServerSettings.from_config(judge, "reward.judge", JUDGE)
    if not judge.get("model"):
        raise ValueError("reward.judge.model is not set: give the model name the judge endpoint serves")


@register("green", low=0.0, high=1.0, components=("matched", "significant_errors", "judge_failed"), check_config=_check)
def green_reward(text: str, gt: dict, extra_info: dict, judge: dict | None = None, fallback_score: float = 0.0) -> dict:
    """GREEN of the answer against the reference report, judged over HTTP."""
    reference = reference_text(gt)
    if reference is None:
        return {"score": 0.0, "reason": f"ground truth has no reference report (task {gt.get('task')!r})"}
    judge = judge or {}
    settings = ServerSettings.from_config(judge, "reward.judge", JUDGE)
    prompt = PROMPT.format(reference=reference[:4000], candidate=answer_section(text)[:4000])
    payload = {
        "model": judge.get("model"),
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0.0,
        "max_tokens": int(judge.get("max_tokens", 1024)),
    }
    reply = post_json(settings, "/v1/chat/completions", payload)
    parsed = parse_green(_content(reply)) if reply is not None else None
    if parsed is None:
        if reply is not None:
            record_failure()
        return {"score": fallback_score, "judge_failed": 1.0, "reason": "judge unreachable or reply not in GREEN format"}
    counts, matched = parsed
    return {"score": green_score(counts, matched), "matched": matched, "significant_errors": sum(counts.values()), "judge_failed": 0.0}


def _content(reply) -> str:
    try:
        return str(reply["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        return ""
