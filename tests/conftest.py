"""Shared test settings: one intra-op thread, a reusable cache for tiny models and generated data,
and run folders under pytest's temporary directory (never the checkout's outputs/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"

# Tiny-model steps stall at random with two intra-op threads on 2-core machines (tiny-models.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Built once per checkout and reused across runs (git-ignored); building takes ~30 s.
os.environ.setdefault("RADGRPO_CACHE", str(REPO / ".cache" / "test"))


@pytest.fixture
def outputs_dir(tmp_path, monkeypatch) -> Path:
    """Run folders for one test, picked up by conf/paths through RADGRPO_OUTPUTS."""
    folder = tmp_path / "outputs"
    monkeypatch.setenv("RADGRPO_OUTPUTS", str(folder))
    return folder


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (`make test`: `--dist loadgroup`) tests spread one by one over the workers,
    except tests sharing one of this suite's module- or session-scoped fixtures (one verl run checked by
    several tests, the SLURM cluster): those stay together in their module's group, so whatever the
    fixture builds is built once."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        shared = info is not None and any(
            d.scope in ("module", "package", "session") and getattr(d.func, "__module__", "").startswith("tests.")
            for defs in info.name2fixturedefs.values() for d in defs)
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
