"""Broken records are dropped and counted under the right reason; good ones all survive."""

from __future__ import annotations

import json

import pytest

from radgrpo.prep.errors import MALFORMED, PrepError
from tests.unit.test_prep_inputs import GROUNDING_Q, llava, medgemma_records, png, prep, rows, write_json


def _good(i: int, image: str) -> str:
    boxes = "No abnormalities or lesions are detected on this Chest X-ray." if i % 3 == 0 else \
        f"The findings include a nodule located at the coordinates [0.{i % 9}, 0.2, 0.9, 0.{i % 5 + 5}]."
    return json.dumps(llava(f"vindr-cxr_good{i}", image, GROUNDING_Q, boxes))


def _bad(image: str, missing: str, corrupt: str) -> list[tuple[str, str]]:
    """(reason, JSON text of one broken list element)."""
    g = lambda rid, answer, **kw: json.dumps({**llava(rid, image, GROUNDING_Q, answer), **kw})  # noqa: E731
    return [
        ("invalid_json", '{"id": "vindr-cxr_b1", "image": "x.png", "conversations": [}'),
        ("invalid_json", '{"id": "vindr-cxr_b2", oops: 1}'),
        ("not_a_record", "42"),
        ("not_a_record", '"just a string"'),
        ("bad_field_type", g("vindr-cxr_b3", "[0.1, 0.1, 0.2, 0.2]", image=7)),
        ("bad_conversations", json.dumps({"id": "vindr-cxr_b4", "image": image, "conversations": "hello"})),
        ("bad_conversations", json.dumps({"id": "vindr-cxr_b5", "image": image, "conversations": [
            {"from": "gpt", "value": "[0.1, 0.1, 0.2, 0.2]"}, {"from": "human", "value": GROUNDING_Q}]})),
        ("empty_question", json.dumps({"id": "vindr-cxr_b6", "image": image, "conversations": [
            {"from": "human", "value": "<image>\n  "}, {"from": "gpt", "value": "At [0.1, 0.1, 0.2, 0.2]."}]})),
        ("empty_answer", json.dumps({"id": "vindr-cxr_b7", "image": image, "conversations": [
            {"from": "human", "value": "<image>\nWhere is the nodule located?"}, {"from": "gpt", "value": "   "}]})),
        ("no_image", g("vindr-cxr_b8", "At [0.1, 0.1, 0.2, 0.2].", image="")),
        ("image_placeholder_mismatch", json.dumps({"id": "vindr-cxr_b9", "image": image, "conversations": [
            {"from": "human", "value": "<image><image>\nWhere is it located?"}, {"from": "gpt", "value": "At [0.1, 0.1, 0.2, 0.2]."}]})),
        ("image_missing", g("vindr-cxr_b10", "At [0.1, 0.1, 0.2, 0.2].", image=missing)),
        ("image_corrupt", g("vindr-cxr_b11", "At [0.1, 0.1, 0.2, 0.2].", image=corrupt)),
        ("box_malformed", g("vindr-cxr_b12", "At [0.1, 0.1, 0.2].")),
        ("box_out_of_range", g("vindr-cxr_b13", "At [0.1, 0.1, 1.2, 0.2].")),
        ("box_inverted", g("vindr-cxr_b14", "At [0.5, 0.1, 0.2, 0.2].")),
        ("box_empty", g("vindr-cxr_b14e", "At [0.2, 0.1, 0.2, 0.3].")),
        ("no_boxes", g("vindr-cxr_b15", "It looks a bit unusual to me.")),
        ("bad_unicode", g("vindr-cxr_b16", "At [0.1, 0.1, 0.2, 0.2] \ud800.")),  # a lone surrogate
        ("bad_unicode", "RAW_BAD_BYTES"),  # invalid UTF-8 bytes, spliced in below
    ]


def _build(tmp_path):
    image = png(tmp_path / "ok.png")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    bad = _bad(image, str(tmp_path / "missing.png"), str(corrupt))
    elements, expected = [], {}
    for i, (reason, text) in enumerate(bad):
        elements += [_good(2 * i, image), text, _good(2 * i + 1, image)]
        expected[reason] = expected.get(reason, 0) + 1
    body = ("[\n" + ",\n".join(elements) + "\n]").encode("utf-8", "surrogatepass")
    raw = json.dumps(llava("vindr-cxr_b17", image, GROUNDING_Q, "At [0.1, 0.1, 0.2, 0.2] XX.")).encode()
    body = body.replace(b"RAW_BAD_BYTES", raw.replace(b"XX", b"\xff\xfe"))
    path = tmp_path / "broken.json"
    path.write_bytes(body)
    return path, expected, 2 * len(bad)


def test_every_good_record_kept_every_bad_one_counted(tmp_path):
    path, expected, n_good = _build(tmp_path)
    assert len(expected) >= 12
    result = prep([f"input={path}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    kept = [r["extra_info"]["id"] for r in rows(tmp_path / "out")]
    assert kept == [f"vindr-cxr_good{i}" for i in range(n_good)]
    counts = result.manifest["counts"]
    assert counts["dropped"] == expected
    assert counts["read"] == n_good + sum(expected.values())
    assert set(counts["dropped"]) <= set(MALFORMED)
    assert {e["reason"] for e in result.manifest["first_dropped"]} == set(expected)


def test_truncated_file_keeps_what_came_before(tmp_path):
    image = png(tmp_path / "ok.png")
    text = "[\n" + ",\n".join(_good(i, image) for i in range(3)) + ',\n{"id": "vindr-cxr_cut", "image": "'
    path = tmp_path / "cut.json"
    path.write_text(text)
    result = prep([f"input={path}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    assert len(rows(tmp_path / "out")) == 3
    assert result.manifest["counts"]["dropped"] == {"truncated_input": 1}


def test_strict_fails_listing_first_offenders_and_writes_nothing(tmp_path):
    path, expected, _ = _build(tmp_path)
    with pytest.raises(PrepError) as err:
        prep([f"input={path}", f"output={tmp_path / 'out'}", "strict=true"])
    message = str(err.value)
    assert "strict=true" in message and "invalid_json" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))


def test_mcqa_bad_options_and_labels(tmp_path):
    image = png(tmp_path / "x.png")
    records = medgemma_records(image)
    records["s0"]["correct_answer"] = "E"                 # not an option
    records["s1"]["options"] = "A. yes / B. no"           # not a list or dict
    records["s2"]["question"] = ""                        # empty question
    records["s3"] = dict(records["s2"], question="Fine?")  # a good one
    src = write_json(tmp_path / "mcqa.json", records)
    result = prep(["source=medgemma_mcqa", f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    assert [r["extra_info"]["id"] for r in rows(tmp_path / "out")] == ["s3"]
    assert result.manifest["counts"]["dropped"] == {"bad_options": 2, "empty_question": 1}


def test_non_strict_image_keeps_the_readable_images(tmp_path):
    """images.strict=false (seed 002 without --strict_image) drops only the bad image."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.unit.test_prep_inputs import png_bytes

    row = {"images": [{"bytes": png_bytes(1), "path": None}, {"bytes": b"garbage", "path": None}],
           "question": "What?", "options": {"A": "x", "B": "y"}, "answer_label": "A", "answer": "x",
           "reasoning": "", "dataset_name": "d", "dataset_index": 0}
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "t.parquet")
    with pytest.raises(PrepError, match="no record"):
        prep(["source=medvlthinker", f"input={tmp_path / 't.parquet'}", f"output={tmp_path / 'a'}", "val_fraction=0"])
    prep(["source=medvlthinker", f"input={tmp_path / 't.parquet'}", f"output={tmp_path / 'b'}", "val_fraction=0",
          "images.strict=false"])
    (kept,) = rows(tmp_path / "b")
    assert len(kept["images"]) == 1 and kept["prompt"][-1]["content"].count("<image>") == 1
