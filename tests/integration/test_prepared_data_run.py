"""The whole user path: seed-format data -> radgrpo-prep -> radgrpo data=prepared -> a GRPO step,
with a two-term reward mix whose components both reach the run's metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from radgrpo.data.synthetic import draw_chest
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO
from ..unit.test_prep_inputs import GROUNDING_Q, llava


def radvlm_grounding_json(folder, n=16):
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        pixels, boxes = draw_chest(rng, 112, 0 if i % 4 == 0 else 1)
        image = folder / f"cxr_{i}.png"
        Image.fromarray(pixels).save(image)
        answer = ("No abnormalities or lesions are detected on this Chest X-ray." if not boxes else
                  f"The findings include a nodule located at the coordinates {[round(v, 2) for v in boxes[0]]}.")
        records.append(llava(f"vindr-cxr_{i}", str(image), GROUNDING_Q, answer))
    path = folder / "all_train_llava.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.integration
def test_prepared_radvlm_grounding_trains(tmp_path):
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    source = radvlm_grounding_json(tmp_path)
    prepared = tmp_path / "prepared" / "vindr_grounding"
    prep = subprocess.run([sys.executable, "-m", "radgrpo.cli.prep", "source=radvlm_llava", "task=grounding",
                           f"input={source}", f"output={prepared}", "val_fraction=0.25",
                           "source.dataset_filter=[vindr-cxr]"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert prep.returncode == 0, prep.stderr[-3000:]
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["counts"]["kept_total"] == 16 and not manifest["counts"]["dropped"]

    train = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", "data=prepared", f"data.dir={prepared}",
                            "reward=iou_format",
                            "algorithm.total_training_steps=1", "algorithm.train_batch_size=8",
                            "data.verl.data.max_prompt_length=512", "data.verl.data.max_response_length=48"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert train.returncode == 0, (train.stdout[-3000:], train.stderr[-5000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed" and summary["steps_completed"] == 1
    assert json.loads((summary_path.parent / "manifest.json").read_text()) == manifest
    (step,) = [s["data"] for s in load_metrics(summary_path.parent) if "actor/pg_loss" in s["data"]]
    for component in ("reward/iou/mean", "reward/format/mean", "reward/iou/matched_iou/mean"):
        assert component in step, sorted(k for k in step if k.startswith("reward/"))
