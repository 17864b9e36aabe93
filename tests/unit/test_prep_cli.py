"""The radgrpo-prep command: the documented usage works, user errors are one clear line, and the
prep path never imports torch or transformers unless the token filter asks for them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_prep_inputs import GROUNDING_Q, llava, png, radvlm_records, write_json

PREP = [sys.executable, "-m", "radgrpo.cli.prep"]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*PREP, *args, f"hydra.run.dir={tmp_path / 'hydra'}"], capture_output=True, text=True,
                          timeout=300)


def test_documented_usage(tmp_path):
    image = png(tmp_path / "cxr.png")
    src = write_json(tmp_path / "all_train_llava.json", radvlm_records(image))
    out = tmp_path / "prepared" / "vindr_grounding"
    done = _run(["source=radvlm_llava", "task=grounding", f"input={src}", f"output={out}",
                 "source.dataset_filter=[vindr-cxr,vindr-cxr-mono]"], tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["kept_total"] == 3 and manifest["source"] == "radvlm_llava"
    assert "wrote" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize("args, message", [
    (["input={tmp}/nope.json", "output={tmp}/o"], "input={tmp}/nope.json: no such file or folder"),
    (["output={tmp}/o"], "input= is required"),
    (["source=llava", "input={tmp}/in.json", "output={tmp}/o"], "unknown source 'llava'; choose one of: chexpo_vqa"),
    (["task=mcqa", "input={tmp}/in.json", "output={tmp}/o"], "source radvlm_llava has no task 'mcqa'"),
    (["prompt=fancy", "input={tmp}/in.json", "output={tmp}/o"], "unknown prompt 'fancy'"),
    (["images.mode=inline", "input={tmp}/in.json", "output={tmp}/o"], "images.mode=inline is not one of"),
    (["token_filter.max_prompt_tokens=512", "input={tmp}/in.json", "output={tmp}/o"],
     "token_filter.max_prompt_tokens needs token_filter.processor"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    write_json(tmp_path / "in.json", [llava("vindr-cxr_0", png(tmp_path / "a.png"), GROUNDING_Q, "At [0.1, 0.2, 0.3, 0.4].")])
    done = _run([a.format(tmp=tmp_path) for a in args], tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("radgrpo-prep: error: ")
    assert message.format(tmp=tmp_path) in lines[0]


def test_prep_imports_neither_torch_nor_transformers(tmp_path):
    image = png(tmp_path / "cxr.png")
    src = write_json(tmp_path / "in.json", radvlm_records(image))
    code = f"""
import sys
sys.argv = ["radgrpo-prep", "input={src}", "output={tmp_path / 'out'}", "hydra.run.dir={tmp_path / 'h'}",
            "progress=false"]
from radgrpo.cli.prep import main
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "transformers", "torchvision") if m in sys.modules)
print("HEAVY", heavy)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "out" / "manifest.json").exists()
