"""Every seed format becomes verl rows with the right prompts, images and ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from radgrpo.data.schema import decode_ground_truth
from tests.unit.test_prep_inputs import (chexpo_records, medgemma_records, medvlthinker_parquet, png, prep,
                              radvlm_records, rows, write_json)


def _image_path(entry: dict) -> str:
    assert entry["image"].startswith("file:///")
    return entry["image"][len("file://"):]


def _check_row(row: dict) -> dict:
    """Invariants every row keeps; returns the decoded ground truth."""
    user = [m for m in row["prompt"] if m["role"] == "user"]
    assert sum(m["content"].count("<image>") for m in row["prompt"]) == len(row["images"]) >= 1
    assert user[0]["content"].startswith("<image>")
    for entry in row["images"]:
        with Image.open(_image_path(entry)) as im:
            im.verify()
    assert row["reward_model"]["style"] == "rule"
    truth = decode_ground_truth(row["reward_model"]["ground_truth"])
    assert truth["task"] == row["ability"] == row["extra_info"]["task"]
    assert row["extra_info"]["num_images"] == len(row["images"])
    return truth


@pytest.mark.parametrize("task, expected_ids", [
    ("grounding", ["vindr-cxr_0", "vindr-cxr_1", "vindr-cxr-mono_2", "chest-imagenome_3"]),
    ("report", ["mimic-cxr_4"]),
    ("classification", ["mimic-cxr_5"]),
    ("conversation", ["mimic-cxr-conv_6"]),
])
def test_radvlm_llava_tasks(tmp_path, task, expected_ids):
    image = png(tmp_path / "cxr.png")
    src = write_json(tmp_path / "all_train_llava.json", radvlm_records(image))
    result = prep([f"input={src}", f"output={tmp_path / 'out'}", f"task={task}", "val_fraction=0"])
    got = rows(tmp_path / "out")
    assert [r["extra_info"]["id"] for r in got] == expected_ids
    counts = result.manifest["counts"]
    assert counts["read"] == 7 and counts["kept_total"] == len(expected_ids)
    assert counts["filtered"] == {"other_task": 7 - len(expected_ids)}
    truths = {r["extra_info"]["id"]: _check_row(r) for r in got}
    if task == "grounding":
        assert truths["vindr-cxr_0"]["boxes"] == [[0.1, 0.2, 0.3, 0.4]]
        assert truths["vindr-cxr_1"]["boxes"] == []
        assert truths["vindr-cxr-mono_2"]["boxes"] == [[0.5, 0.5, 0.9, 0.8], [0.05, 0.6, 0.3, 0.95]]
        assert result.manifest["boxes"]["per_row"] == {"0": 1, "1": 2, "2": 1}
        assert got[0]["prompt"][-1]["content"].endswith("their locations?")
    if task == "report":
        assert truths["mimic-cxr_4"]["report"] == "Heart size is normal. No focal consolidation."
    if task == "classification":
        assert truths["mimic-cxr_5"]["labels"] == ["cardiomegaly", "edema"]
    if task == "conversation":
        prompt = got[0]["prompt"]
        assert [m["role"] for m in prompt] == ["user", "assistant", "user"]
        assert truths["mimic-cxr-conv_6"]["answer"] == "Small."


def test_dataset_filter_matches_id_prefix(tmp_path):
    image = png(tmp_path / "cxr.png")
    src = write_json(tmp_path / "in.json", radvlm_records(image))
    result = prep([f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0",
                   "source.dataset_filter=[vindr-cxr,vindr-cxr-mono]"])
    assert sorted(r["data_source"] for r in rows(tmp_path / "out")) == ["vindr-cxr", "vindr-cxr", "vindr-cxr-mono"]
    assert result.manifest["counts"]["filtered"] == {"dataset_filter": 4}  # checked before the task
    assert result.manifest["data_sources"] == {"vindr-cxr": 2, "vindr-cxr-mono": 1}


def test_llava_parquet_option_2(tmp_path):
    """Seed 000's LLaVA-format parquet files convert like the JSON."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = png(tmp_path / "cxr.png")
    pq.write_table(pa.Table.from_pylist(radvlm_records(image)[:3]), tmp_path / "train_vindr.parquet")
    prep([f"input={tmp_path / 'train_vindr.parquet'}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    assert [r["extra_info"]["id"] for r in rows(tmp_path / "out")] == ["vindr-cxr_0", "vindr-cxr_1", "vindr-cxr-mono_2"]


def test_medvlthinker_mcqa_from_parquet_bytes(tmp_path):
    src = medvlthinker_parquet(tmp_path / "train.parquet")
    result = prep(["source=medvlthinker", f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    got = rows(tmp_path / "out")
    assert len(got) == 4 and result.manifest["images"]["converted_or_extracted"] == 0
    for i, row in enumerate(got):
        truth = _check_row(row)
        assert truth == {"task": "mcqa", "label": "ABCD"[i], "answer": ["Normal", "Pneumonia", "Effusion", "Mass"][i],
                         "options": {"A": "Normal", "B": "Pneumonia", "C": "Effusion", "D": "Mass"},
                         **({"explanation": "Look at the lungs."} if i % 2 else {})}
        assert "A. Normal\nB. Pneumonia" in row["prompt"][-1]["content"]
        assert row["data_source"] == "pmc_vqa" and row["extra_info"]["label"] == "ABCD"[i]
        assert Path(_image_path(row["images"][0])).parent == tmp_path / "out_image_cache"


def test_medvlthinker_bytes_mode_and_pixel_bounds(tmp_path):
    src = medvlthinker_parquet(tmp_path / "train.parquet", n=2)
    prep(["source=medvlthinker", f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0",
          "images.mode=bytes", "images.min_pixels=3136", "images.max_pixels=12544"])
    for row in rows(tmp_path / "out"):
        (entry,) = row["images"]
        assert entry["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
        assert (entry["min_pixels"], entry["max_pixels"]) == (3136, 12544)


def test_chexpo_relative_images_and_think_prompt(tmp_path):
    (tmp_path / "images").mkdir()
    png(tmp_path / "images" / "p1.png")
    src = write_json(tmp_path / "train.json", chexpo_records("p1.png"))
    prep(["source=chexpo_vqa", "prompt=think", f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0",
          f"source.image_root={tmp_path / 'images'}"])
    got = rows(tmp_path / "out")
    assert len(got) == 3
    for row in got:
        truth = _check_row(row)
        assert truth["answer"] in ("yes", "no") and truth["reasoning"] == "The heart is enlarged."
        assert row["prompt"][0]["role"] == "system" and "<answer>" in row["prompt"][0]["content"]
        assert row["extra_info"]["answer_type"] == "closed"


def test_medgemma_dict_json(tmp_path):
    image = png(tmp_path / "x.png")
    src = write_json(tmp_path / "train_vqa_data.json", medgemma_records(image))
    prep(["source=medgemma_mcqa", f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0"])
    got = rows(tmp_path / "out")
    assert [r["extra_info"]["id"] for r in got] == ["s0", "s1", "s2"]
    truth = _check_row(got[0])
    assert truth["label"] == "B" and truth["answer"] == "Pneumonia"
    assert truth["explanation"] == "Consolidation in the right lower lobe"
    assert truth["evidence"] == "Right lower lobe consolidation Pneumonia"
    assert got[0]["prompt"][-1]["content"].startswith("<image>\nIndication: Chest pain\nWhat is the primary finding?")


def test_val_split_is_seeded_and_val_input_goes_to_val(tmp_path):
    image = png(tmp_path / "cxr.png")
    many = [dict(r, id=f"vindr-cxr_{i}") for i, r in enumerate(radvlm_records(image)[:1] * 200)]
    src = write_json(tmp_path / "in.json", many)
    first = prep([f"input={src}", f"output={tmp_path / 'a'}", "val_fraction=0.2", "seed=3"])
    again = prep([f"input={src}", f"output={tmp_path / 'b'}", "val_fraction=0.2", "seed=3"])
    assert first.manifest["counts"]["kept"] == again.manifest["counts"]["kept"]
    assert 20 <= first.manifest["counts"]["kept"]["val"] <= 60
    val_ids = [r["extra_info"]["id"] for r in rows(tmp_path / "a", "val")]
    assert val_ids == [r["extra_info"]["id"] for r in rows(tmp_path / "b", "val")]
    assert [r["extra_info"]["index"] for r in rows(tmp_path / "a", "val")] == list(range(len(val_ids)))

    val = write_json(tmp_path / "val.json", radvlm_records(image)[:2])
    both = prep([f"input={src}", f"val_input={val}", f"output={tmp_path / 'c'}"])
    assert both.manifest["counts"]["kept"] == {"train": 200, "val": 2}


def test_trl_layout(tmp_path):
    import datasets

    image = png(tmp_path / "cxr.png")
    src = write_json(tmp_path / "in.json", radvlm_records(image))
    prep([f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0", "format=trl"])
    trl = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "trl" / "train" / "*.parquet"))["train"]
    assert trl.column_names == ["id", "data_source", "task", "prompt", "images", "solution", "ground_truth"]
    first = trl[0]
    assert first["images"][0].size == (40, 32)  # decoded to PIL by the Image feature
    assert first["prompt"][0]["content"].count("<image>") == 1
    assert json.loads(first["ground_truth"])["boxes"] == [[0.1, 0.2, 0.3, 0.4]]
    assert len(rows(tmp_path / "out")) == len(trl)
