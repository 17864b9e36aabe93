"""The synthetic grounding dataset: deterministic, valid boxes, ~20% no finding, verl's schema."""

import json

import pyarrow.parquet as pq

from radgrpo.data.schema import decode_ground_truth
from radgrpo.data.synthetic import SyntheticGroundingSpec, generate_synthetic_grounding


def test_dataset_is_deterministic_and_valid(tmp_path):
    spec = SyntheticGroundingSpec(num_train=60, num_val=10, seed=3)
    first = generate_synthetic_grounding(spec, tmp_path / "a")
    second = generate_synthetic_grounding(spec, tmp_path / "b")
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["counts"]["kept"] == {"train": 60, "val": 10}
    rows_a = pq.read_table(first / "train").to_pylist()
    rows_b = pq.read_table(second / "train").to_pylist()
    assert [r["reward_model"] for r in rows_a] == [r["reward_model"] for r in rows_b]
    empty = 0
    for row in rows_a:
        assert row["prompt"][0]["content"].count("<image>") == len(row["images"]) == 1
        assert row["images"][0]["image"].startswith("file://")
        truth = decode_ground_truth(row["reward_model"]["ground_truth"])
        for x1, y1, x2, y2 in truth["boxes"]:
            assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1
        empty += not truth["boxes"]
    assert 5 <= empty <= 20  # about 20% "no finding" of 60


def test_a_rebuild_reuses_the_published_folder(tmp_path):
    spec = SyntheticGroundingSpec(num_train=4, num_val=2)
    folder = generate_synthetic_grounding(spec, tmp_path)
    stamp = (folder / "manifest.json").stat().st_mtime_ns
    assert generate_synthetic_grounding(spec, tmp_path) == folder
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left behind
