"""The tiny-model cache is keyed by what the build reads: a builder change gets a new folder instead of
a model the old builder made."""

from __future__ import annotations

from radgrpo.models import tiny


def test_fingerprint_follows_the_build_inputs(tmp_path, monkeypatch):
    source = tmp_path / "builder.py"
    source.write_text("SIZE = 16\n")
    monkeypatch.setattr(tiny, "build_inputs", lambda: [source])
    before = tiny.build_fingerprint()
    assert tiny.build_fingerprint() == before  # stable
    source.write_text("SIZE = 32\n")
    assert tiny.build_fingerprint() != before


def test_build_inputs_hold_the_families_and_the_warm_start_prompt():
    names = {path.name for path in tiny.build_inputs()}
    assert {"tiny.py", "base.py", "qwen2_5_vl.py", "phi4_multimodal.py", "prompts.py", "synthetic.py",
            f"{tiny.WARM_START_PROMPT}.yaml"} <= names
    assert all(path.is_file() for path in tiny.build_inputs())


def test_cached_model_folder_carries_the_fingerprint(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr("radgrpo.models.families.family_of_tiny", lambda name: type(
        "Family", (), {"build_tiny": staticmethod(lambda n, out: (built.append(n), (out / "config.json").write_text("{}")))})())
    folder = tiny.ensure_tiny_model("tiny_x", tmp_path)
    assert folder.name == f"tiny_x-{tiny.build_fingerprint()}" and (folder / "config.json").exists()
    assert tiny.ensure_tiny_model("tiny_x", tmp_path) == folder and built == ["tiny_x"]  # built once
