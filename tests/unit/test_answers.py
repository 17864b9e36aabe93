"""One grammar for boxes and "no finding" (radgrpo.data.answers): what prep writes as ground truth is
what the `iou` reward credits when a model answers in the same words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from radgrpo.data import answers
from radgrpo.prep.boxes import extract_boxes
from radgrpo.prep.errors import Drop
from radgrpo.prep.rows import ground_truth_of
from radgrpo.prep.sources import SourceOptions
from radgrpo.prep.sources.radvlm_llava import to_sample
from radgrpo.rewards import score
from radgrpo.rewards.boxes import parse_boxes
from tests.unit.test_prep_inputs import GROUNDING_Q, llava

# uzh-dqbm-cmi/RadVLM radvlm/data/create_instructions.py, copied verbatim
NO_LESIONS_ANSWERS = [  # generate_instruction_abnormalities_grouped: VinDr-CXR abnormality grounding
    "I can't find any lesion on the image.",
    "No abnormalities or lesions are detected on this Chest X-ray.",
    "The Chest X-ray appears to be clear of any lesions or abnormalities.",
    "Upon review, no lesions are visible on the image.",
    "The examination reveals a clean bill of health with no visible abnormalities.",
    "This Chest X-ray shows no signs of abnormalities or lesions.",
    "No lesions or abnormalities are present on this X-ray, as far as I can tell.",
    "After a thorough examination, I conclude that there are no detectable lesions on this X-ray.",
    "The image does not display any abnormalities or lesions.",
    "Based on this X-ray, it appears there are no lesions or abnormalities to report.",
]
NO_OBJECTS_ANSWERS = [  # generate_instruction_foreign_objects
    "No foreign objects are detected on this Chest X-ray.",
    "The Chest X-ray is clear of any foreign objects.",
    "There are no detectable foreign objects in this X-ray image.",
    "I find no evidence of foreign objects on this X-ray.",
    "The X-ray does not show any foreign objects.",
    "No unexpected items or foreign objects are visible in the X-ray.",
    "There are no signs of foreign objects on this X-ray.",
    "The X-ray appears clean, with no foreign objects present.",
    "No foreign objects can be seen in the X-ray image.",
    "There's nothing that resembles foreign objects in this X-ray.",
]
NO_ABNORMALITIES_ANSWERS = [  # generate_instruction_abnormalities: classification
    "No abnormalities or lesions are detected on this Chest X-ray.",
    "The Chest X-ray appears to be clear of any abnormalities.",
    "There are no detectable abnormalities on this X-ray.",
    "This Chest X-ray shows no signs of abnormalities.",
    "Based on this X-ray, there are no abnormalities to report.",
    "There are no findings on this Chest X-ray.",
    "The Chest X-ray appears to be clear of any findings.",
]
# what the two old rules disagreed on (issue 10), and the prompt's own instruction ("'no finding'")
OTHER_NO_FINDING = ["There is no evidence of any object in this image.", "Clear of any abnormality.",
                    "Unremarkable chest.", "None", "no finding", "Negative for acute disease.",
                    "Normal chest x-ray."]
ALL_NO_FINDING = NO_LESIONS_ANSWERS + NO_OBJECTS_ANSWERS + NO_ABNORMALITIES_ANSWERS + OTHER_NO_FINDING
WITH_FINDING = ["The findings include a nodule located at the coordinates [0.1, 0.2, 0.3, 0.4].",
                "Cardiomegaly and a left pleural effusion.", "It looks a bit unusual to me.", "No."]


def prep_truth(answer: str, task: str = "grounding", question: str = GROUNDING_Q):
    """The ground truth radgrpo-prep writes for a RadVLM record with this answer (or its Drop)."""
    sample = to_sample(0, llava("vindr-cxr-train1_0", "x.png", question, answer), SourceOptions(task=task))
    return ground_truth_of(sample), sample


@pytest.mark.parametrize("sentence", ALL_NO_FINDING)
def test_every_radvlm_no_finding_sentence_earns_the_seed_000_score(sentence):
    truth, sample = prep_truth(sentence)
    assert sample.truth == {"boxes": []} and sample.answer_type == "no_finding"
    for output in (f"<think>Clear lungs.</think><answer>{sentence}</answer>", sentence):
        result = score("iou", output, truth)
        assert result["score"] == pytest.approx(0.8) and result["no_finding"] == 1.0, output


@pytest.mark.parametrize("sentence", NO_ABNORMALITIES_ANSWERS)
def test_classification_no_finding_has_no_labels(sentence):
    _, sample = prep_truth(sentence, "classification", "Are there any abnormalities on this Chest X-ray?")
    assert sample.truth == {"labels": []}


@pytest.mark.parametrize("sentence", WITH_FINDING)
def test_a_finding_is_not_no_finding(sentence):
    assert not answers.says_no_finding(sentence)
    assert score("iou", f"<answer>{sentence}</answer>", {"task": "grounding", "boxes": []})["score"] == 0.0


_FILLER = ["the", "chest", "x-ray", "image", "shows", "is", "there", "are", "any", "visible", "on", "this",
           "left", "lung", "heart", "i", "see", "appears", "to", "be", "clean", "detected", "present"]
_WORDS = (list(answers.NEGATIONS) + list(answers.CONTRACTIONS) + list(answers.FINDING_WORDS)
          + list(answers.NORMAL_STATEMENTS) + list(answers.WHOLE_ANSWERS) + _FILLER)
_BOX = st.tuples(*[st.integers(0, 100)] * 4).map(
    lambda v: f"[{min(v[0], v[2]) / 100}, {min(v[1], v[3]) / 100}, {max(v[0], v[2]) / 100}, {max(v[1], v[3]) / 100}]")
_SENTENCE = st.lists(st.one_of(st.sampled_from(_WORDS), st.sampled_from([".", ",", ";", "\n"]), _BOX),
                     min_size=1, max_size=25).map(lambda parts: " ".join(parts).strip() or "x")


@settings(max_examples=400, deadline=None)
@given(sentence=_SENTENCE)
def test_prep_and_reward_agree_on_random_sentences(sentence):
    """Whatever prep makes of a sentence, the reward credits a model that answers with it: its
    boxes score 1.0, its "no finding" 0.8, and a sentence prep rejects for lack of either earns
    nothing on an empty ground truth."""
    try:
        truth, sample = prep_truth(sentence)
    except Drop as drop:
        if drop.reason == "box_empty":  # a zero-area box: refused, as no answer could match it
            return
        assert drop.reason == "no_boxes" and not answers.says_no_finding(sentence)
        assert score("iou", f"<answer>{sentence}</answer>", {"task": "grounding", "boxes": []})["score"] == 0.0
        return
    expected = 0.8 if not sample.truth["boxes"] else 1.0
    assert score("iou", f"<answer>{sentence}</answer>", truth)["score"] == pytest.approx(expected)


_FORMATS = (lambda v: repr(v), lambda v: f"{v:.3f}", lambda v: f"+{v}", lambda v: f"{v:.1e}",
            lambda v: f"{v:.2f}".lstrip("0") if v < 1 else "1")
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n"])


@settings(max_examples=300, deadline=None)
@given(ints=st.tuples(st.integers(0, 49), st.integers(0, 49), st.integers(51, 100), st.integers(51, 100)),
       formats=st.lists(st.sampled_from(_FORMATS), min_size=4, max_size=4),
       spaces=st.lists(_SPACE, min_size=8, max_size=8))
def test_prep_and_reward_read_the_same_box(ints, formats, spaces):
    box = [ints[0] / 100, ints[1] / 100, ints[2] / 100, ints[3] / 100]
    texts = [fmt(v) for fmt, v in zip(formats, box)]
    s = spaces
    answer = f"It is at [{s[0]}{texts[0]}{s[1]},{s[2]}{texts[1]}{s[3]},{s[4]}{texts[2]}{s[5]},{s[6]}{texts[3]}{s[7]}]."
    prep_boxes = extract_boxes(answer)
    reward_boxes, n, _ = parse_boxes(answer, coords="unit")
    assert n == 1 and [list(b) for b in reward_boxes] == prep_boxes == [[float(t) for t in texts]]


def test_percent_boxes_are_read_by_the_reward_and_refused_as_ground_truth():
    answer = "At [10%, 20%, 30%, 40%]."
    assert parse_boxes(answer)[0] == [(0.1, 0.2, 0.3, 0.4)]
    with pytest.raises(Drop) as drop:
        extract_boxes(answer)
    assert drop.value.reason == "box_malformed"
