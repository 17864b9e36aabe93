"""sampling=hard from pass-rate tables (radgrpo-difficulty's output): the window, nesting across
sizes, alignment with the training rows, and the one-line message when no table exists."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from radgrpo.difficulty import SCHEMA, aligned_rates, cached_pass_rates, difficulty_command
from radgrpo.sampling import apply_sampling, select_rows


def rows(n=96):
    kinds = ["a"] * 3 + ["b"]
    return [{"data_source": kinds[i % 4], "ability": "grounding", "extra_info": {"id": f"r{i}"}} for i in range(n)]


def table_for(data, rates):
    """A hand-made pass-rate table in radgrpo-difficulty's schema (k=8)."""
    return pa.Table.from_pylist([
        {"row": i, "id": r["extra_info"]["id"], "data_source": r["data_source"], "pass_count": round(rate * 8),
         "k": 8, "pass_rate": rate, "scores": []} for i, (r, rate) in enumerate(zip(data, rates))], schema=SCHEMA)


def hard(size, seed=1, low=1 / 8, high=3 / 8, file=None):
    return OmegaConf.create({"strategy": "hard", "size": size, "seed": seed, "stratify_by": ["data_source"],
                             "pass_rate_key": "pass_rate", "min_pass_rate": low, "max_pass_rate": high,
                             "estimate": {"file": file, "k": 8, "temperature": 1.0, "threshold": 0.5,
                                          "max_new_tokens": 16, "seed": 0}})


# pass counts 0..8 cycling: rows i with i % 9 in {1, 2, 3} are in the window [1/8, 3/8]
RATES = [(i % 9) / 8 for i in range(96)]


def ids(selected):
    return [r["extra_info"]["id"] for r in selected]


def test_the_window_keeps_only_rows_whose_table_rate_is_inside():
    data = rows()
    rates = aligned_rates(table_for(data, RATES), data, "hand-made")
    chosen = select_rows(data, hard(20), rates)
    assert len(chosen) == 20
    assert all(int(r["extra_info"]["id"][1:]) % 9 in (1, 2, 3) for r in chosen)
    eligible = [r for r, rate in zip(data, RATES) if 1 / 8 <= rate <= 3 / 8]
    assert ids(select_rows(data, hard(len(eligible)), rates)) and len(eligible) == 33
    with pytest.raises(ValueError, match="only 33 rows are eligible"):
        select_rows(data, hard(34), rates)
    # the bounds are inclusive: a window of exactly one pass count keeps exactly those rows
    exact = select_rows(data, hard(5, low=2 / 8, high=2 / 8), rates)
    assert {int(r["extra_info"]["id"][1:]) % 9 for r in exact} == {2}


def test_hard_subsets_are_nested_across_sizes_and_seeded():
    data = rows()
    rates = aligned_rates(table_for(data, RATES), data, "hand-made")
    sizes = [8, 16, 24, 33]
    subsets = [ids(select_rows(data, hard(n), rates)) for n in sizes]
    for smaller, larger in zip(subsets, subsets[1:]):
        assert larger[:len(smaller)] == smaller  # the prefix of one seeded order
    assert ids(select_rows(data, hard(16), rates)) == subsets[1]
    assert set(ids(select_rows(data, hard(16, seed=2), rates))) != set(subsets[1])
    # stratified: 3/4 of the eligible rows are source a
    assert sum(r["data_source"] == "a" for r in select_rows(data, hard(16), rates)) == 12


def test_a_table_for_other_rows_is_refused():
    data = rows()
    with pytest.raises(ValueError, match="has 95 rows, the training data 96"):
        aligned_rates(table_for(data[:95], RATES[:95]), data, "t")
    shuffled = data[1:] + data[:1]
    with pytest.raises(ValueError, match="computed for other data"):
        aligned_rates(table_for(shuffled, RATES), data, "t")


def _write(tmp_path, data):
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(data), path)
    return [str(path)]


def test_apply_sampling_reads_an_explicit_table_and_writes_the_chosen_ids(tmp_path):
    data = rows()
    files = _write(tmp_path, data)
    pq.write_table(table_for(data, RATES), tmp_path / "pass_rates.parquet")
    cfg = OmegaConf.create({"sampling": hard(10, file=str(tmp_path / "pass_rates.parquet"))})
    (out,) = apply_sampling(cfg.sampling, files, tmp_path / "run" / "data", pass_rates=cached_pass_rates(cfg, "unused"))
    chosen = pq.read_table(out).to_pylist()
    assert json.loads((tmp_path / "run" / "data" / "train_ids.json").read_text()) == ids(chosen)
    assert all(int(i[1:]) % 9 in (1, 2, 3) for i in ids(chosen))


@pytest.mark.parametrize("strategy", ["all", "uniform"])
def test_every_strategy_writes_its_row_ids(tmp_path, strategy):
    data = rows(12)
    files = _write(tmp_path, data)
    cfg = OmegaConf.create({"strategy": strategy, "size": 5, "seed": 1, "stratify_by": []})
    apply_sampling(cfg, files, tmp_path / "run" / "data")
    written = json.loads((tmp_path / "run" / "data" / "train_ids.json").read_text())
    assert written == (ids(data) if strategy == "all" else ids(select_rows(data, cfg)))


def test_missing_cache_says_in_one_line_how_to_produce_it(tmp_path):
    data = rows(12)
    files = _write(tmp_path, data)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    cfg = OmegaConf.create({"sampling": hard(4), "paths": {"cache": str(tmp_path / "cache")},
                            "reward": {"name": "iou", "terms": [{"name": "iou", "weight": 1.0, "params": {}}]}})
    with pytest.raises(ValueError) as err:
        apply_sampling(cfg.sampling, files, tmp_path / "run" / "data", pass_rates=cached_pass_rates(cfg, str(model)))
    message = str(err.value)
    assert "\n" not in message and "produce them with: radgrpo-difficulty" in message
    assert "k=8, temperature=1.0, threshold=0.5" in message


def test_the_printed_command_keeps_only_the_overrides_that_key_the_cache():
    overrides = ["model=qwen2_5_vl_7b", "data=prepared", "data.dir=/d", "reward=iou", "sampling=hard",
                 "sampling.size=1000", "seed=2", "sampling.estimate.k=16", "algorithm.lr=1e-6"]
    assert difficulty_command(overrides) == (
        "radgrpo-difficulty model=qwen2_5_vl_7b data=prepared data.dir=/d reward=iou sampling=hard "
        "sampling.estimate.k=16")
