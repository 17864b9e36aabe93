"""Dataset identity on RadVLM's real id prefixes (uzh-dqbm-cmi/RadVLM radvlm/data/create_llava_dataset.py):
`source.dataset_filter=[vindr-cxr,vindr-cxr-mono]` keeps exactly the VinDr records, in both id styles,
on the fast and the per-record path, with `data_source` the canonical name and the raw prefix kept."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from radgrpo.prep import fastpath
from radgrpo.prep.sources.radvlm_llava import canonical_dataset
from tests.unit.test_prep_inputs import GROUNDING_Q, llava, png, prep

# every training prefix create_llava_dataset.py writes, the test prefixes of rfahrn/RadVLM's VLM-R1
# test script, and the plain style seed 000's --dataset_filter was written for
PREFIXES = {
    "vindr-cxr-train1": "vindr-cxr", "vindr-cxr-train2": "vindr-cxr", "vindr-cxr-mono-train1": "vindr-cxr-mono",
    "mscxr-train1": "mscxr", "mscxr-train2": "mscxr", "mscxr-train3": "mscxr", "padchest-train1": "padchest",
    "padchest-train2": "padchest", "mimic-train": "mimic", "chexpertplus-train": "chexpertplus",
    "chestima-train": "chestima", "mimic-labels-train": "mimic-labels", "chexpert-train": "chexpert",
    "conv-train": "conv", "conv-grounded-train1": "conv-grounded", "conv-grounded-train4": "conv-grounded",
    "conv-grounded-padchest-train1": "conv-grounded-padchest", "conv-grounded-padchest-train4": "conv-grounded-padchest",
    "mimic-test": "mimic", "mimic-labels-test": "mimic-labels", "chexpert-test": "chexpert",
    "vindr-cxr-test": "vindr-cxr", "vindr-cxr-mono-test": "vindr-cxr-mono", "padchest-test": "padchest",
    "vindr-cxr": "vindr-cxr", "vindr-cxr-mono": "vindr-cxr-mono",
}


@pytest.mark.parametrize("prefix, dataset", sorted(PREFIXES.items()))
def test_canonical_dataset_of_every_radvlm_prefix(prefix, dataset):
    assert canonical_dataset(prefix) == dataset


def _grounding_answer(i: int) -> str:
    return ("No abnormalities or lesions are detected on this Chest X-ray." if i % 3 == 0
            else f"The findings include a nodule located at the coordinates [0.1, 0.2, 0.3, 0.{i % 6 + 4}].")


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "per_record_path"])
def test_vindr_filter_keeps_both_id_styles(tmp_path, monkeypatch, fast):
    image = png(tmp_path / "cxr.png")
    records = [llava(f"{prefix}_{i}", image, GROUNDING_Q, _grounding_answer(i))
               for i, prefix in enumerate(sorted(PREFIXES) * 3)]
    src = tmp_path / "all_train.json"
    src.write_text(json.dumps(records, indent=1))
    seen = []
    convert = fastpath.convert_block
    monkeypatch.setattr(fastpath, "convert_block", lambda conv, key0, recs: (seen.append(len(recs)), convert(conv, key0, recs)))
    if not fast:
        monkeypatch.setattr(fastpath, "blocks", lambda cfg, path: None)
    result = prep([f"input={src}", f"output={tmp_path / 'out'}", "task=grounding", "val_fraction=0",
                   "source.dataset_filter=[vindr-cxr,vindr-cxr-mono]"])
    assert (sum(seen) == len(records)) if fast else not seen

    rows = pq.read_table(tmp_path / "out" / "train").to_pylist()
    vindr = [r["id"] for r in records if PREFIXES[r["id"].rsplit("_", 1)[0]] in ("vindr-cxr", "vindr-cxr-mono")]
    assert sorted(r["extra_info"]["id"] for r in rows) == sorted(vindr)
    for row in rows:
        raw = row["extra_info"]["id"].rsplit("_", 1)[0]
        assert row["data_source"] == row["extra_info"]["dataset"] == PREFIXES[raw]
        assert row["extra_info"]["id_prefix"] == raw
    assert set(result.manifest["data_sources"]) == {"vindr-cxr", "vindr-cxr-mono"}
    assert result.manifest["counts"]["filtered"]["dataset_filter"] == len(records) - len(vindr)


def test_filter_on_a_raw_prefix_keeps_that_pass_only(tmp_path):
    image = png(tmp_path / "cxr.png")
    records = [llava(f"{p}_{i}", image, GROUNDING_Q, _grounding_answer(i))
               for i, p in enumerate(["mscxr-train1", "mscxr-train2", "mscxr-train3"] * 2)]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(records))
    prep([f"input={src}", f"output={tmp_path / 'out'}", "val_fraction=0", "source.dataset_filter=[mscxr-train2]"])
    rows = pq.read_table(tmp_path / "out" / "train").to_pylist()
    assert [r["extra_info"]["id"] for r in rows] == ["mscxr-train2_1", "mscxr-train2_4"]
    assert {r["data_source"] for r in rows} == {"mscxr"}
