"""RadVLM's task mix in one GRPO run: a grounding and a report dataset prepared by radgrpo-prep, trained
together with the routed `radvlm_tasks` reward; each task's terms reach the step metrics and
validation is reported per data source - the report set's validation split coming in as an evaluation
suite (`suite=radvlm_report`), as radgrpo-eval's suites join verl's validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from radgrpo.data.synthetic import draw_chest
from radgrpo.runs.folder import load_metrics

from ..conftest import REPO
from ..unit.test_prep_inputs import GROUNDING_Q, REPORT_Q, llava

REPORTS = ["Heart size is normal. No focal consolidation.", "Small left pleural effusion. No pneumothorax.",
           "Cardiomegaly with mild pulmonary edema.", "The lungs are clear."]


def _radvlm_files(folder) -> dict[str, object]:
    """train/val LLaVA JSON files with RadVLM's real id prefixes: VinDr grounding in both id styles,
    MIMIC-CXR reports."""
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 4), ("val", 2)):
        records = []
        for i in range(n):
            pixels, boxes = draw_chest(rng, 112, 0 if i % 2 else 1)
            image = folder / f"{split}_{i}.png"
            Image.fromarray(pixels).save(image)
            answer = ("No abnormalities or lesions are detected on this Chest X-ray." if not boxes else
                      f"The findings include a nodule located at the coordinates {[round(v, 2) for v in boxes[0]]}.")
            prefix = "vindr-cxr-train1" if i % 2 else "vindr-cxr"
            records.append(llava(f"{prefix}_{split}{i}", str(image), GROUNDING_Q, answer))
            records.append(llava(f"mimic-train_{split}{i}", str(image), REPORT_Q, REPORTS[i]))
        files[split] = folder / f"{split}.json"
        files[split].write_text(json.dumps(records))
    return files


@pytest.mark.integration
def test_grounding_and_report_train_together(tmp_path):
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    files = _radvlm_files(tmp_path)
    prepared = []
    for task in ("grounding", "report"):
        out = tmp_path / "prepared" / ("mimic" if task == "report" else task)  # radvlm_report's <root>/mimic
        prep = subprocess.run([sys.executable, "-m", "radgrpo.cli.prep", "source=radvlm_llava", f"task={task}",
                               "prompt=think", f"input={files['train']}", f"val_input={files['val']}",
                               f"output={out}", "progress=false"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert prep.returncode == 0, prep.stderr[-3000:]
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["counts"]["kept"] == {"train": 4, "val": 2}, manifest["counts"]
        prepared.append(str(out))
    assert json.loads((tmp_path / "prepared" / "grounding" / "manifest.json").read_text())["data_sources"] == {"vindr-cxr": 6}

    # the data's own validation: grounding only; the report val split joins as the radvlm_report suite
    train = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", "data=radvlm_tasks",
                            f"data.dirs=[{','.join(prepared)}]", "reward=radvlm_tasks",
                            f"data.val_files=[{prepared[0]}/val]", "suite=radvlm_report",
                            f"suite.root={tmp_path / 'prepared'}",
                            "algorithm.total_training_steps=1", "algorithm.train_batch_size=8",
                            "data.verl.data.max_prompt_length=512", "data.verl.data.max_response_length=48"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert train.returncode == 0, (train.stdout[-3000:], train.stderr[-5000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    assert json.loads(summary_path.read_text())["status"] == "completed"
    lines = [s["data"] for s in load_metrics(summary_path.parent)]
    val_files = OmegaConf.load(summary_path.parent / "verl_config.yaml").data.val_files
    assert [f.split("/prepared/")[1] for f in val_files] == ["grounding/val/part-00000.parquet",
                                                             "mimic/val/part-00000.parquet"]

    (step,) = [m for m in lines if "actor/pg_loss" in m]  # the one step: all 8 rows, both tasks
    for key in ("reward/iou/mean", "reward/iou/matched_iou/mean", "reward/rouge_l/mean", "reward/report_f1/mean",
                "reward/format/mean"):
        assert key in step, sorted(k for k in step if k.startswith("reward/"))
    assert step["reward/unrouted/mean"] == 0.0

    val = {k: v for m in lines for k, v in m.items() if k.startswith("val-")}
    for key in ("val-core/vindr-cxr/reward/mean@1", "val-core/mimic/reward/mean@1",
                "val-aux/vindr-cxr/iou/mean@1", "val-aux/mimic/report_f1/mean@1"):
        assert key in val, sorted(val)
    assert not [k for k in val if k.startswith("val-aux/vindr-cxr/report_f1") or k.startswith("val-aux/mimic/iou")]
