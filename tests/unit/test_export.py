"""radgrpo-export's checkpoint lookup and its one-line errors (the round trips are integration tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from radgrpo.export.checkpoint import ExportError, default_output, find_actor_dir

from ..conftest import REPO


def _checkpoint(run, step):
    actor = run / "checkpoints" / f"global_step_{step}" / "actor"
    actor.mkdir(parents=True)
    (actor / "fsdp_config.json").write_text('{"FSDP_version": 2, "world_size": 1}')
    return actor


def test_latest_and_numbered_steps(tmp_path):
    first, newest = _checkpoint(tmp_path, 2), _checkpoint(tmp_path, 10)
    assert find_actor_dir(tmp_path) == newest
    assert find_actor_dir(tmp_path, 2) == first
    assert find_actor_dir(tmp_path / "checkpoints", "latest") == newest
    assert find_actor_dir(first.parent) == first and find_actor_dir(first) == first
    (tmp_path / "verl_config.yaml").write_text("{}")  # marks the run folder
    assert default_output(newest) == tmp_path / "export" / "global_step_10"
    with pytest.raises(ExportError, match=r"no checkpoint for step 5 .* steps: \[2, 10\]"):
        find_actor_dir(tmp_path, 5)
    with pytest.raises(ExportError, match="'latest' or a number"):
        find_actor_dir(tmp_path, "newest")


def test_a_run_without_checkpoints_says_how_to_get_them(tmp_path):
    with pytest.raises(ExportError, match="save_freq"):
        find_actor_dir(tmp_path)


def test_cli_errors_are_one_line(tmp_path):
    for args, expected in ((["run=/no/such/run"], "no such run or checkpoint folder"), ([], "give the run to export")):
        result = subprocess.run([sys.executable, "-m", "radgrpo.cli.export", *args], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("radgrpo-export: error: ") and expected in lines[0], lines


def test_the_export_asks_the_family_registry_for_the_model_class():
    """radgrpo.export.family decides by the registered family of the checkpoint's model_type (Phi-4-MM's
    native layout has a vision_config yet loads with AutoModelForCausalLM); any other model is a
    one-line error."""
    import transformers

    from radgrpo.export.family import auto_model_class, family_of_config
    from radgrpo.models.families import FAMILIES, get_family

    for name in FAMILIES:
        family = get_family(name)
        config = transformers.AutoConfig.for_model(family.model_type)
        assert family_of_config(config) is family
        assert auto_model_class(config) is getattr(transformers, family.auto_class)
    phi4 = transformers.AutoConfig.for_model("phi4_multimodal")
    assert hasattr(phi4, "vision_config") and auto_model_class(phi4) is transformers.AutoModelForCausalLM
    with pytest.raises(ExportError, match="model_type 'llama' is no registered model family") as error:
        auto_model_class(transformers.AutoConfig.for_model("llama"))
    assert "\n" not in str(error.value)
