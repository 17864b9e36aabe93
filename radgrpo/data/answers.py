"""How an answer states boxes and "no finding": one grammar for prep (which writes ground truth from
RadVLM's answers) and the rewards (which read the model's answers), so a model that answers in its
training data's own words is scored as that data was labelled.

Boxes. A number is ASCII `[-+]?(digits[.digits] | .digits)[e[-+]digits]`, optionally followed by `%`
(percent coordinates: models write them, RadVLM's normalised ground truth never does); whitespace
is ASCII. The classes are written out so that Python's `re` and arrow's RE2 (prep's fast path) read
every pattern here identically. A box is `[x1, y1, x2, y2]`; `BRACKET_PATTERN` matches a bracket of
any count of numbers so prep can report `[0.1, 0.2, 0.3]` as malformed instead of skipping it.
Model answers may also use Qwen2-VL's `(x1,y1),(x2,y2)` (`POINT_PAIR_PATTERN`).

No finding. An answer says nothing was found when, within one sentence and `WINDOW` characters, a
negation (`NEGATIONS`, or a word ending in n't) is followed by a finding word (`FINDING_WORDS`), or it states normality
(`NORMAL_STATEMENTS`), or it is only "none"/"normal". This covers every no-finding answer of
RadVLM's instruction templates (uzh-dqbm-cmi/RadVLM `radvlm/data/create_instructions.py`:
`no_lesions_answers` of `generate_instruction_abnormalities_grouped` - VinDr-CXR grounding -,
`no_objects_answers` of `generate_instruction_foreign_objects`, `no_abnormalities_answers` of
`generate_instruction_abnormalities`; its MS-CXR / PadChest phrase-grounding templates always carry
boxes) and the usual report phrasings ("Unremarkable chest.", "Negative for acute disease.").
tests/unit/test_answers.py checks each template against prep and the `iou` reward.

Labels. A classification answer lists its labels after the template's colon ("The following
abnormalities are present: cardiomegaly, edema and effusion." in `generate_instruction_abnormalities`),
or bare ("Cardiomegaly, edema."); `answer_labels` reads both, for prep's ground truth and for the
`label_f1` reward alike.
"""

from __future__ import annotations

import re
from functools import lru_cache

WS = r"[ \t\n\r\f]"
NUMBER = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
COORD = NUMBER + "%?"
BRACKET_PATTERN = rf"\[{WS}*{COORD}(?:{WS}*,{WS}*{COORD})*{WS}*\]"
BOX_PATTERN = rf"\[{WS}*({COORD}){WS}*,{WS}*({COORD}){WS}*,{WS}*({COORD}){WS}*,{WS}*({COORD}){WS}*\]"
POINT_PAIR_PATTERN = (rf"\({WS}*({COORD}){WS}*,{WS}*({COORD}){WS}*\){WS}*,{WS}*"
                      rf"\({WS}*({COORD}){WS}*,{WS}*({COORD}){WS}*\)")

NEGATIONS = ("no", "not", "none", "nothing", "without", "free of", "clear of", "absence of",
             "negative for")
CONTRACTIONS = ("can't", "don't", "doesn't", "isn't", "aren't", "can’t")  # any word ending in n't
FINDING_WORDS = ("abnormality", "abnormalities", "abnormal", "lesion", "lesions", "finding", "findings",
                 "object", "objects", "sign", "signs", "evidence", "pathology", "pathologies", "opacity",
                 "opacities", "disease", "nodule", "nodules", "mass", "masses", "acute")
NORMAL_STATEMENTS = ("normal study", "normal chest", "normal exam", "normal radiograph", "normal x-ray",
                     "normal xray", "unremarkable", "clean bill of health")
WHOLE_ANSWERS = ("none", "normal")
WINDOW = 60          # characters after a negation in which the finding word must start
SCAN_CHARS = 2000    # a "no finding" statement is short; bound the work on huge answers


def _words(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_NEGATION = re.compile(rf"\b(?:{_words(NEGATIONS)})\b|n['’]t\b")
_FINDING = re.compile(rf"\b(?:{_words(FINDING_WORDS)})")
_NORMAL = re.compile(rf"\b(?:{_words(NORMAL_STATEMENTS)})\b|^{WS}*(?:{_words(WHOLE_ANSWERS)})\b")
_SENTENCE_END = re.compile(r"[.\n;!?]")
_LABEL_SPLIT = re.compile(r"\s*(?:,|;|\band\b)\s*")
_ARTICLE = re.compile(r"^(?:a|an|the)\s+")


@lru_cache(maxsize=1 << 14)
def says_no_finding(text: str) -> bool:
    """True if the answer states that nothing was found (see the module docstring)."""
    low = text[:SCAN_CHARS].lower()
    if _NORMAL.search(low):
        return True
    for neg in _NEGATION.finditer(low):
        window = _SENTENCE_END.split(low[neg.end(): neg.end() + WINDOW], 1)[0]
        if _FINDING.search(window):
            return True
    return False


def answer_labels(text: str) -> list[str]:
    """The labels a classification answer lists, lowercased, in order, without repeats; [] when it
    says there is no finding."""
    if says_no_finding(text):
        return []
    listed = text[:SCAN_CHARS].rsplit(":", 1)[-1].strip().rstrip(".!").lower()
    labels = []
    for item in _LABEL_SPLIT.split(listed):
        label = _ARTICLE.sub("", item.strip())
        if label and label not in labels:
            labels.append(label)
    return labels
