"""`iou` (seed 000) and box parsing: hand-computed cases."""

import pytest

from radgrpo.data.schema import encode_ground_truth
from radgrpo.rewards import score
from radgrpo.rewards.boxes import match_boxes, parse_boxes

BOX = [0.1, 0.1, 0.5, 0.5]
GT_ONE = encode_ground_truth("grounding", boxes=[BOX])
GT_NONE = encode_ground_truth("grounding", boxes=[])


# The four seed-000 cases.
def test_perfect_match_scores_one():
    assert score("iou", "<think>left lung</think><answer>[0.1, 0.1, 0.5, 0.5]</answer>", GT_ONE)["score"] == 1.0


def test_partial_overlap_scores_the_iou():
    # pred [0.1,0.1,0.3,0.5]: inter 0.2*0.4=0.08, union 0.16 -> 0.5
    assert score("iou", "<answer>[0.1, 0.1, 0.3, 0.5]</answer>", GT_ONE)["score"] == pytest.approx(0.5)


def test_correct_no_finding_scores_point_eight():
    out = score("iou", "<think>clear lungs</think><answer>No abnormalities detected.</answer>", GT_NONE)
    assert out["score"] == pytest.approx(0.8) and out["no_finding"] == 1.0


@pytest.mark.parametrize(
    "answer, gt",
    [
        ("<answer>[0.2, 0.2, 0.4, 0.4]</answer>", GT_NONE),  # false positive
        ("<answer>No abnormalities.</answer>", GT_ONE),  # false negative
        ("<answer>I am not sure.</answer>", GT_NONE),  # no box and no "no finding" statement
        ("<answer>[0.6, 0.6, 0.9, 0.9]</answer>", GT_ONE),  # disjoint box
    ],
)
def test_false_positive_and_negative_score_zero(answer, gt):
    assert score("iou", answer, gt)["score"] == 0.0


@pytest.mark.parametrize(
    "answer, extra_info",
    [
        ("<answer>[10%, 10%, 50%, 50%]</answer>", {}),
        ("<answer>[100, 50, 500, 250]</answer>", {"image_size": [1000, 500]}),
        ("<answer>[100, 50, 500, 250]</answer>", {"width": 1000, "height": 500}),
        ("<answer><|box_start|>(100,100),(500,500)<|box_end|></answer>", {}),  # Qwen2-VL 0-1000 grid
        ('<answer>{"bbox_2d": [0.5, 0.5, 0.1, 0.1], "label": "nodule"}</answer>', {}),  # swapped corners
        ("[0.1,0.1,0.5,0.5]", {}),  # no tags at all
    ],
)
def test_box_formats_models_write(answer, extra_info):
    assert score("iou", answer, GT_ONE, extra_info)["score"] == pytest.approx(1.0)


def test_pixel_boxes_without_image_size_are_not_guessed():
    out = score("iou", "<answer>[100, 50, 500, 250]</answer>", GT_ONE)
    assert out["score"] == 0.0 and "image size" in out["reason"]


def test_several_boxes_use_hungarian_soft_f1():
    gt = encode_ground_truth("grounding", boxes=[[0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]])
    both = "<answer>[0.5, 0.5, 0.7, 0.7] [0.0, 0.0, 0.2, 0.2]</answer>"
    assert score("iou", both, gt)["score"] == pytest.approx(1.0)
    # one exact box and one extra disjoint box: 2 * 1.0 / (2 + 1)
    one_plus_fp = "<answer>[0.0, 0.0, 0.2, 0.2] [0.8, 0.8, 0.9, 0.9]</answer>"
    assert score("iou", one_plus_fp, encode_ground_truth("grounding", boxes=[[0.0, 0.0, 0.2, 0.2]]))["score"] == pytest.approx(2 / 3)


def test_hungarian_beats_greedy_on_a_two_by_two_case():
    # Full-height strips, so IoU is the overlap of x intervals. IoU matrix (pred x gt):
    # [[0.5, 0.0], [0.75, 2/3]]. Greedy takes 0.75 first and is left with 0.0; the optimum is 0.5 + 2/3.
    gt = [(0.2, 0.0, 1.0, 1.0), (0.6, 0.0, 1.0, 1.0)]
    pred = [(0.2, 0.0, 0.6, 1.0), (0.4, 0.0, 1.0, 1.0)]
    assert sorted(match_boxes(pred, gt)) == pytest.approx([0.5, 2 / 3])


def test_bare_list_ground_truth_of_seed_000_files():
    assert score("iou", "<answer>[0.1,0.1,0.5,0.5]</answer>", [BOX])["score"] == 1.0
    assert score("iou", "<answer>no finding</answer>", [])["score"] == pytest.approx(0.8)


def test_ten_thousand_boxes_are_all_charged():
    answer = "<answer>" + " ".join(["[0.1, 0.1, 0.5, 0.5]"] * 10_000) + "</answer>"
    out = score("iou", answer, GT_ONE)
    assert out["n_pred"] == 10_000 and out["score"] == pytest.approx(2 / 10_001)


def test_non_grounding_ground_truth_gives_zero_with_reason():
    out = score("iou", "<answer>[0.1,0.1,0.5,0.5]</answer>", encode_ground_truth("report", report="x"))
    assert out["score"] == 0.0 and "box" in out["reason"]


def test_parse_boxes_reports_total_and_caps_matching():
    boxes, total, _ = parse_boxes("[0,0,1,1] [0,0,1,1] [0,0,1,1]", max_boxes=2)
    assert len(boxes) == 2 and total == 3
