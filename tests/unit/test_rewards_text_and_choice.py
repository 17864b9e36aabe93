"""Hand-computed cases: report metrics, mcqa, medgemma (seed 004), r1v_acc and kg_jaccard (seed 003)."""

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import score
from radgrpo.rewards.kg import rule_graph
from radgrpo.rewards.text_metrics import lcs_length

REPORT = "Small left pleural effusion. No pneumothorax."
GT_REPORT = encode_ground_truth("report", report=REPORT)
OPTIONS = {"A": "Normal", "B": "Pneumonia", "C": "Fracture"}
GT_MCQA = encode_ground_truth(
    "mcqa",
    label="B",
    answer="Pneumonia",
    options=OPTIONS,
    explanation="consolidation in right lower lobe",
    evidence="Right lower lobe consolidation. Heart size normal.",
)


def test_bleu_is_sacrebleu_sentence_bleu_over_100():
    hyp = "Small left effusion. No pneumothorax."
    expected = BLEU(effective_order=True).sentence_score(hyp, [REPORT]).score / 100
    assert score("bleu", f"<think>x</think><answer>{hyp}</answer>", GT_REPORT)["score"] == pytest.approx(expected)
    assert score("bleu", f"<answer>{REPORT}</answer>", GT_REPORT)["score"] == pytest.approx(1.0)


def test_rouge_l_matches_rouge_score_and_hand_value():
    # tokens: small left effusion no pneumothorax (5) vs small left pleural effusion no pneumothorax (6):
    # LCS 5, P 1, R 5/6 -> F1 10/11
    out = score("rouge_l", "Small left effusion. No pneumothorax.", GT_REPORT)["score"]
    assert out == pytest.approx(10 / 11)
    reference = rouge_scorer.RougeScorer(["rougeL"]).score(REPORT, "Small left effusion. No pneumothorax.")
    assert out == pytest.approx(reference["rougeL"].fmeasure)
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def test_report_f1_counts_shared_words():
    # pred words: small effusion (2); ref: small left pleural effusion no pneumothorax (6); common 2
    # P 1, R 1/3 -> F1 0.5
    assert score("report_f1", "Small effusion", GT_REPORT)["score"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>...</think><answer>B</answer>", 1.0),
        ("<answer>(B) Pneumonia</answer>", 1.0),
        ("The final answer is \\boxed{B}", 1.0),
        ("Answer: B", 1.0),
        ("B. Pneumonia", 1.0),
        ("<answer>pneumonia</answer>", 1.0),
        ("<answer>A</answer>", 0.0),
        ("<answer>A, B, C</answer>", 0.0),  # listing options is not a choice
        ("I think it could be pneumonia or a fracture", 0.0),
        ("", 0.0),
    ],
)
def test_mcqa_extraction(text, expected):
    assert score("mcqa", text, GT_MCQA)["score"] == expected


def test_mcqa_accepts_a_bare_letter_ground_truth():
    assert score("mcqa", "<answer>C</answer>", "C")["score"] == 1.0


def test_medgemma_composite_arithmetic_of_seed_004():
    text = (
        "<start_working_out>right lower lobe consolidation<end_working_out>"
        "<SOLUTION>B - Pneumonia</SOLUTION>"
    )
    out = score("medgemma", text, GT_MCQA)
    # words: right lower lobe consolidation b pneumonia (6) vs consolidation in right lower lobe (5):
    # common 4 -> P 4/6, R 4/5, F1 = 8/11. Evidence: right, lower, consolidation (>= 4 letters;
    # "lobe" too) -> 4 >= 3 words -> 1.0. Format 1, 69 chars <= 220 -> concise 1.
    assert out["answer"] == 1.0 and out["explanation"] == pytest.approx(8 / 11)
    assert out["evidence"] == 1.0 and out["format"] == 1.0 and out["concise"] == 1.0
    assert out["score"] == pytest.approx(1.0 + 0.6 * 8 / 11 + 0.2 + 0.1 + 0.1)
    wrong_long = "<SOLUTION>A</SOLUTION>" + " filler" * 40
    out = score("medgemma", wrong_long, GT_MCQA)
    assert out == {"score": 0.0, "answer": 0.0, "explanation": 0.0, "evidence": 0.0, "format": 0.0, "concise": 0.0}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>..</think><answer>Left pleural effusion</answer>", 1.0),
        ("<answer>pleural effusion on the left</answer>", 1.0),  # F1 = 2*3/(5+3) = 0.75
        ("<answer>pneumothorax</answer>", 0.0),
        ("The lungs are clear. Left pleural effusion.", 1.0),  # no <answer>: last sentence
    ],
)
def test_r1v_acc(text, expected):
    gt = encode_ground_truth("vqa", answer="<answer> Left pleural effusion </answer>")
    assert score("r1v_acc", text, gt)["score"] == expected


def test_kg_jaccard_hand_computed():
    # reference graph: {effusion OBS-DP, pleural ANAT, pneumothorax OBS-DA}, {(effusion, pleural)}
    gt = encode_ground_truth("report", report="Pleural effusion. No pneumothorax.")
    same = score("kg_jaccard", "Pleural effusion. No pneumothorax.", gt)
    assert same["score"] == 1.0
    # prediction says pneumothorax present: entities {effusion, pleural, pneumothorax OBS-DP}
    # -> entity Jaccard 2/4, relation Jaccard 1/1 -> 0.75
    out = score("kg_jaccard", "Pleural effusion. Pneumothorax.", gt)
    assert out["entities"] == pytest.approx(0.5) and out["relations"] == 1.0 and out["score"] == pytest.approx(0.75)
    f1 = score("kg_jaccard", "Pleural effusion. Pneumothorax.", gt, metric="f1")
    assert f1["entities"] == pytest.approx(2 * 2 / 6)


def test_kg_jaccard_uses_a_graph_given_in_the_data_and_empty_union_scores_one():
    gt = {"task": "vqa", "answer": "x", "kg": {"entities": [["effusion", "OBS-DP"]], "relations": []}}
    out = score("kg_jaccard", "<think>effusion</think><answer>yes</answer>", gt)
    assert out["entities"] == 1.0 and out["relations"] == 1.0
    assert rule_graph("") == (frozenset(), frozenset())
