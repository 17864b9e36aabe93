"""The arrow fast path writes exactly what the per-record path writes, counts included."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radgrpo.prep import fastpath
from radgrpo.prep.boxes import extract_boxes
from radgrpo.prep.rows import grounding_truth
from radgrpo.data.schema import encode_ground_truth
from tests.unit.test_prep_inputs import GROUNDING_Q, REPORT_Q, llava, png, prep

QUESTIONS = [GROUNDING_Q, REPORT_Q, "Where is the left lung located?", "Which abnormalities are present?",
             "<image><image>\nWhere is it?", "   ", "Locate the nodule: ", "Describe the image."]
ANSWERS = ["No abnormalities or lesions are detected on this Chest X-ray.", "It looks unusual.",
           "At [0.1, 0.2, 0.3, 0.4].", "At [0.10, 0.2, 0.3, 0.4] and [0.5, 0.5, 1.0, 1].",
           "At [0.5, 0.2, 0.3, 0.4].", "At [0.1, 0.2, 0.3].", "At [0.00001, 0.2, 0.3, 0.4].",
           "At [.5, 0.2, 0.6, 0.9]", " [0.1,0.2,0.3,0.4] ", "", "Heart size normal.", "At [0.1, 0.2, 1.5, 0.4].",
           "Sure: [0.123456789012345, 0.2, 0.3, 0.4]; [0.0, 0.0, 1.0, 1.0]", "Unicode ✓ at [0.1, 0.2, 0.3, 0.4]"]
IDS = ["vindr-cxr_{i}", "vindr-cxr-mono_{i}", "mimic-cxr_{i}", "  padded_{i} ", "noprefix{i}", "",
       "vindr-cxr-train2_{i}", "vindr-cxr-mono-train1_{i}", "mscxr-train3_{i}", "-train1_{i}", "mimic-test_{i}"]


def _records(rng: random.Random, images: list[str], n: int) -> list:
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.01:
            out.append(rng.choice([None, 5, "text", {"id": f"x{i}"}]))  # breaks its block's arrow parse
            continue
        rec = llava(rng.choice(IDS).format(i=i), rng.choice(images), rng.choice(QUESTIONS), rng.choice(ANSWERS))
        if roll < 0.06:
            rec["conversations"].append({"from": "human", "value": "And?"})
        elif roll < 0.09:
            rec["conversations"][0]["from"] = "gpt"
        elif roll < 0.11:
            rec["dataset"] = rng.choice(["vindr-cxr", " ", "other", "padchest-train2"])
        elif roll < 0.13:
            rec["image"] = rng.choice(["", "   ", None])
        out.append(rec)
    return out


def _run_both(tmp_path, monkeypatch, src, extra: list[str], block_bytes: int = 4096):
    """Run with the fast path (small blocks, so most parse and some fall back) and without it.

    Returns the fast run's result and how many records the fast path saw in parsed blocks.
    """
    seen = []
    convert = fastpath.convert_block
    monkeypatch.setattr(fastpath, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(fastpath, "convert_block", lambda conv, key0, recs: (seen.append(len(recs)), convert(conv, key0, recs)))
    fast = prep([f"input={src}", f"output={tmp_path / 'fast'}", *extra])
    with monkeypatch.context() as m:
        m.setattr(fastpath, "blocks", lambda cfg, path: None)
        slow = prep([f"input={src}", f"output={tmp_path / 'slow'}", *extra])
    for split in ("train", "val"):
        a, b = tmp_path / "fast" / split, tmp_path / "slow" / split
        assert a.exists() == b.exists()
        if a.exists():
            assert pq.read_table(a).equals(pq.read_table(b)), split
    for key in ("counts", "data_sources", "answer_types", "boxes", "prompt_chars", "images_per_row"):
        assert fast.manifest.get(key) == slow.manifest.get(key), key
    return fast, sum(seen)


@pytest.mark.parametrize("extra", [
    ["val_fraction=0"],
    ["val_fraction=0.3", "prompt=think"],
    ["source.dataset_filter=[vindr-cxr,vindr-cxr-mono,mscxr-train3]", "images.min_pixels=100",
     "images.max_pixels=4000"],
    ["max_prompt_chars=95", "task=report"],
    ["task=classification"],
])
def test_fast_and_per_record_paths_agree(tmp_path, monkeypatch, extra):
    images = [png(tmp_path / "a.png"), png(tmp_path / "b.png", seed=1), str(tmp_path / "missing.png"), "a.png"]
    src = tmp_path / "mixed.json"
    src.write_text(json.dumps(_records(random.Random(7), images, 600), indent=1, ensure_ascii=False))
    result, in_parsed_blocks = _run_both(tmp_path, monkeypatch, src, extra)
    assert result.manifest["counts"]["read"] == 600
    assert in_parsed_blocks > 300  # most blocks took the arrow path


def test_small_blocks_and_broken_records_between_them(tmp_path, monkeypatch):
    """Blocks cut mid-file, some of which fail to parse and are read exactly."""
    image = png(tmp_path / "a.png")
    elements = [json.dumps(r) for r in _records(random.Random(3), [image], 300)]
    elements[40] = '{"id": "vindr-cxr_broken", "image": 3, "conversations": [}'
    elements[200] = '{"id": "vindr-cxr_b2", "image": "a.png", "conversations": [{"from": "human", "value": "x"}]'
    src = tmp_path / "blocks.json"
    src.write_text("[\n" + ",\n".join(elements) + "\n]")
    result, in_parsed_blocks = _run_both(tmp_path, monkeypatch, src, ["val_fraction=0"])
    assert 0 < in_parsed_blocks < 300
    assert result.manifest["counts"]["read"] == 300
    assert result.manifest["counts"]["dropped"]["invalid_json"] == 2


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(*[st.floats(0, 1, allow_nan=False)] * 4), max_size=4))
def test_grounding_truth_text_equals_encode_ground_truth(boxes):
    boxes = [[min(a, c), min(b, d), max(a, c), max(b, d)] for a, b, c, d in boxes if a != c and b != d]
    assert grounding_truth(boxes) == encode_ground_truth("grounding", boxes=boxes)
    text = " and ".join(f"[{', '.join(map(repr, b))}]" for b in boxes)
    assert extract_boxes(text) == boxes
