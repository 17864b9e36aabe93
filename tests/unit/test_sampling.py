"""Training subsets: seeded, stratified, nested across sizes; hard sampling needs pass rates."""

from collections import Counter

import pytest
from omegaconf import OmegaConf

from radgrpo.sampling import select_rows


def rows(n=200):
    # 3 strata in proportions 50% / 30% / 20%
    kinds = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    return [{"data_source": kinds[i % 10], "ability": "grounding",
             "extra_info": {"id": f"r{i}", "pass_rate": (i % 16) / 16}} for i in range(n)]


def uniform(size, seed=1):
    return OmegaConf.create({"strategy": "uniform", "size": size, "seed": seed, "stratify_by": ["data_source"]})


def ids(selected):
    return [r["extra_info"]["id"] for r in selected]


def test_uniform_keeps_proportions():
    counts = Counter(r["data_source"] for r in select_rows(rows(), uniform(100)))
    assert counts == {"a": 50, "b": 30, "c": 20}


def test_subsets_are_nested_across_sizes_and_seeded():
    small, large = ids(select_rows(rows(), uniform(40))), ids(select_rows(rows(), uniform(120)))
    assert set(small) <= set(large)
    assert ids(select_rows(rows(), uniform(40))) == small
    assert set(ids(select_rows(rows(), uniform(40, seed=2)))) != set(small)


def test_hard_keeps_only_the_pass_rate_window():
    cfg = OmegaConf.create({"strategy": "hard", "size": 30, "seed": 1, "stratify_by": ["data_source"],
                            "pass_rate_key": "pass_rate", "min_pass_rate": 1 / 16, "max_pass_rate": 7 / 16})
    chosen = select_rows(rows(), cfg)
    assert len(chosen) == 30
    assert all(1 / 16 <= r["extra_info"]["pass_rate"] <= 7 / 16 for r in chosen)


def test_hard_without_pass_rates_is_a_clear_error():
    cfg = OmegaConf.create({"strategy": "hard", "size": 5, "seed": 1, "stratify_by": [], "pass_rate_key": "pass_rate",
                            "min_pass_rate": 0.0, "max_pass_rate": 0.5})
    bare = [{"data_source": "x", "extra_info": {"id": str(i)}} for i in range(10)]
    with pytest.raises(ValueError, match="extra_info.pass_rate"):
        select_rows(bare, cfg)


def test_asking_for_more_rows_than_exist_is_an_error():
    with pytest.raises(ValueError, match="only 200 rows"):
        select_rows(rows(), uniform(500))
