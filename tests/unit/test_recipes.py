"""The seeds' recipes (conf/experiment): every preset composes, with the data a user supplies, into a verl
config verl's validate_config accepts, through the same `-m experiment='glob(*)'` a user would type;
each says what it needs and a missing data folder is one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from ..conftest import CONF_DIR, REPO
from .test_prep_inputs import GROUNDING_Q, llava, png, prep, write_json

RECIPES = ("chexpo_v2", "medgemma_mcqa", "radvlm_grpo_grounding", "radvlm_grpo_report", "medvlthinker")


def prepared_dir(tmp_path):
    image = png(tmp_path / "cxr.png", size=(56, 56))
    records = [llava(f"vindr-cxr-train1_{i}", image, GROUNDING_Q, "No abnormalities or lesions are detected.")
               for i in range(8)]
    out = tmp_path / "prepared"
    prep(["source=radvlm_llava", "task=grounding", f"input={write_json(tmp_path / 'in.json', records)}",
          f"output={out}", "val_fraction=0.25"])
    return out


def test_every_recipe_cites_its_seed_and_says_what_to_supply():
    for name in RECIPES:
        text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
        assert text.startswith("# @package _global_"), name
        assert re.search(r"# Seeds? 00[0-4]", text), name
        assert "Supply:" in text and "CPU twin (tests):" in text, name


def test_all_presets_compose_into_configs_verl_accepts(tmp_path):
    data = prepared_dir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "radgrpo.cli.train", "-m", "experiment=glob(*)", "dry_run=true", f"++data.dir={data}",
         "++sampling.size=4"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")})
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    presets = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert result.stdout.count("(dry run: nothing started)") == len(presets)  # each validated by verl
    assert re.search(r"^\s+lr: 6\.0e-05$", result.stdout, flags=re.M)  # chexpo_v2's learning rate reached verl


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_without_its_data_is_one_line(recipe, tmp_path):
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", f"experiment={recipe}", "dry_run=true"],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RADGRPO_OUTPUTS": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip() == "radgrpo: error: data.dir: mandatory, no value given; set it on the command line (data.dir=...)"
