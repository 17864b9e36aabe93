"""Each seed recipe's CPU twin trains one GRPO step through verl: the preset itself (its reward, algorithm,
peft, sampling and hyper-parameters) with the tiny model of its family and a few records in the seed's
own format, generated here and prepared by radgrpo-prep.

A twin is defined in its preset's header (conf/experiment/<name>.yaml), read here:
    # CPU twin (tests): <overrides>
    #   data.dir=<radgrpo-prep <prep arguments>, on generated records>
Every twin also gets ONE_CHEAP_STEP (the suite's budget): 2 prompts x 2 samples, 1 step, no validation
and no checkpoint.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from radgrpo.data.synthetic import draw_chest
from radgrpo.models.tiny import build_fingerprint
from radgrpo.runs.folder import load_metrics

from ..conftest import CONF_DIR, REPO
from ..unit.test_prep_inputs import GROUNDING_Q, REPORT_Q, llava, prep, write_json

RECIPES = ("chexpo_v2", "medgemma_mcqa", "radvlm_grpo_grounding", "radvlm_grpo_report", "medvlthinker")
ONE_CHEAP_STEP = [
    "algorithm.total_training_steps=1", "algorithm.train_batch_size=2", "algorithm.ppo_mini_batch_size=2",
    "algorithm.rollout_n=2", "algorithm.micro_batch_size_per_gpu=4", "algorithm.log_prob_micro_batch_size_per_gpu=4",
    "algorithm.save_freq=-1", "algorithm.test_freq=-1", "verl.trainer.val_before_train=false",
]
TWIN = re.compile(r"^# CPU twin \(tests\): (?P<overrides>.*)\n#\s+data\.dir=<radgrpo-prep (?P<prep>.*), on generated records>$",
                  re.M)
PASS_RATES = "<pass_rates.parquet>"  # a placeholder in medvlthinker's twin: the table written here
REPORTS = ["Heart size is normal. No focal consolidation.", "Small left pleural effusion. No pneumothorax.",
           "Cardiomegaly with mild pulmonary edema.", "The lungs are clear."]


def twin(recipe: str) -> tuple[list[str], list[str]]:
    """(training overrides, radgrpo-prep arguments) of the recipe's CPU twin, from its header."""
    match = TWIN.search((CONF_DIR / "experiment" / f"{recipe}.yaml").read_text())
    assert match, f"{recipe}: no CPU twin header"
    return match["overrides"].split(), match["prep"].split()


def chest_png(folder: Path, i: int) -> tuple[str, list[list[float]]]:
    pixels, boxes = draw_chest(np.random.default_rng(i), 112, i % 2)
    path = folder / f"cxr_{i}.png"
    Image.fromarray(pixels).save(path)
    return str(path), boxes


def radvlm_llava(folder: Path, ids: range) -> Path:
    """RadVLM's all_train_llava.json: VinDr grounding (a box or "no finding") and MIMIC-CXR reports, with
    RadVLM's id prefixes (the dataset names prep filters on)."""
    records = []
    for i in ids:
        image, boxes = chest_png(folder, i)
        answer = (f"The findings include a nodule located at the coordinates {boxes[0]}." if boxes else
                  "No abnormalities or lesions are detected on this Chest X-ray.")
        records += [llava(f"vindr-cxr_{i}", image, GROUNDING_Q, answer),
                    llava(f"mimic-train_{i}", image, REPORT_Q, REPORTS[i % len(REPORTS)])]
    return write_json(folder / f"llava_{ids.start}.json", records)


def chexpo_vqa(folder: Path, ids: range) -> Path:
    """MIMIC-VQA-CoT chat records (seed 003), closed questions with <think>/<answer> replies."""
    records = []
    for i in ids:
        image, boxes = chest_png(folder, i)
        answer = "yes" if boxes else "no"
        records.append({"messages": [{"role": "user", "content": "<image>Is there a nodule?"},
                                     {"role": "assistant", "content": f"<think>A round opacity is {'' if boxes else 'not '}"
                                                                      f"seen in the lung.</think><answer>{answer}</answer>"}],
                        "image": Path(image).name, "question": "Is there a nodule?", "answer": answer, "id": f"q{i}"})
    return write_json(folder / f"chexpo_{ids.start}.json", records)


def medgemma_mcqa(folder: Path, ids: range) -> Path:
    """Seed 004's train_vqa_data.json: a dict of MCQA cases with an explanation and report fields."""
    options = ["A. Normal", "B. Pneumonia", "C. Pleural effusion", "D. Nodule"]
    cases = {}
    for i in ids:
        image, boxes = chest_png(folder, i)
        cases[f"s{i}"] = {"question": "What is the primary finding?", "options": options,
                          "correct_answer": "D" if boxes else "A",
                          "correct_answer_explanation": "A round opacity in the lung" if boxes else "Clear lungs",
                          "ImagePath": [image], "Indication": "Cough",
                          "Findings": "Round opacity in the left lung" if boxes else "Lungs are clear",
                          "Impression": "Nodule" if boxes else "Normal chest"}
    return write_json(folder / f"medgemma_{ids.start}.json", cases)


def medvlthinker(folder: Path, ids: range) -> Path:
    """Seed 002's m23k parquet: MCQA rows, images as {bytes, path} structs."""
    rows = []
    for i in ids:
        pixels, boxes = draw_chest(np.random.default_rng(i), 112, i % 2)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        rows.append({"images": [{"bytes": buffer.getvalue(), "path": None}], "question": "What does this X-ray show?",
                     "options": json.dumps({"A": "Normal", "B": "Nodule", "C": "Effusion", "D": "Fracture"}),
                     "answer_label": "B" if boxes else "A", "answer": "Nodule" if boxes else "Normal",
                     "reasoning": "", "dataset_name": "pmc_vqa", "dataset_index": i})
    path = folder / f"m23k_{ids.start}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


RECORDS = {"radvlm_llava": radvlm_llava, "chexpo_vqa": chexpo_vqa, "medgemma_mcqa": medgemma_mcqa,
           "medvlthinker": medvlthinker}


def prepared(folder: Path, prep_args: list[str]) -> Path:
    """radgrpo-prep of 8 generated train and 2 val records in the source's format."""
    (source,) = [a.split("=", 1)[1] for a in prep_args if a.startswith("source=")]
    (folder / "inputs").mkdir(parents=True)
    train, val = (RECORDS[source](folder / "inputs", ids) for ids in (range(8), range(8, 10)))
    out = folder / "prepared"
    result = prep([*prep_args, f"input={train}", f"val_input={val}", f"output={out}"])
    assert result.manifest["counts"]["kept"] == {"train": 8, "val": 2}, result.manifest["counts"]
    return out


def pass_rates(data_dir: Path, table: Path) -> set[str]:
    """A radgrpo-difficulty-style table (id, pass_rate) for the prepared train rows, every other row inside
    medvlthinker's window (1..7 passes of 16); returns the ids inside it."""
    ids = [r["extra_info"]["id"] for r in pq.read_table(data_dir / "train").to_pylist()]
    rates = [3 / 16 if n % 2 else 12 / 16 for n in range(len(ids))]
    pq.write_table(pa.table({"id": ids, "pass_rate": rates}), table)
    return {i for i, rate in zip(ids, rates) if rate < 0.5}


def node(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


# What the twin must keep from its preset, seen in the run: the model family, the reward terms in the
# step metrics, the preset's verl keys (A. = algorithm., ACT. = actor_rollout_ref.actor., M. = ...model.)
FAMILY = {"chexpo_v2": "tiny_phi4_multimodal", "medgemma_mcqa": "tiny_medgemma"}
REWARD_TERMS = {"chexpo_v2": ["r1v_acc", "kg_jaccard"], "medgemma_mcqa": ["medgemma"],
                "radvlm_grpo_grounding": ["iou"], "radvlm_grpo_report": ["bleu"], "medvlthinker": ["mcqa", "format"]}
LORA = {"M.lora_rank": 16, "M.lora_alpha": 32}
PRESET_KEYS = {
    "chexpo_v2": {"ACT.optim.lr": 6e-5, "ACT.kl_loss_coef": 0.5, "ACT.use_kl_loss": True, **LORA,
                  "M.target_modules": "all-linear",
                  # LoRA on the image side only: not on the language model or the audio tower
                  "M.exclude_modules": r"(?!(?:model\.embed_tokens_extend\.image_embed)\.).*"},
    "medgemma_mcqa": {"ACT.use_kl_loss": False, "data.max_response_length": 128, **LORA},
    "radvlm_grpo_grounding": {"data.filter_overlong_prompts": False, "data.image_key": "images", "M.lora_rank": 0},
    "radvlm_grpo_report": {"data.filter_overlong_prompts": False, "M.lora_rank": 0},
    "medvlthinker": {"ACT.optim.lr": 1e-6, "ACT.kl_loss_coef": 0.01, "ACT.use_kl_loss": True, "M.lora_rank": 0},
}
SEED_004_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ABBREVIATIONS = {"ACT.": "actor_rollout_ref.actor.", "M.": "actor_rollout_ref.model."}


def test_every_recipe_has_a_twin():
    presets = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if p.stem != "smoke")
    assert presets == sorted(RECIPES) == sorted(PRESET_KEYS) == sorted(REWARD_TERMS)
    for recipe in RECIPES:
        overrides, prep_args = twin(recipe)
        assert [o for o in overrides if o.startswith("model=tiny_")], recipe
        assert [a for a in prep_args if a.split("=")[0] == "source" and a.split("=")[1] in RECORDS], recipe


@pytest.mark.integration
@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_twin_trains_one_step(recipe, tmp_path):
    overrides, prep_args = twin(recipe)
    data = prepared(tmp_path / "data", prep_args)
    inside = pass_rates(data, tmp_path / "pass_rates.parquet") if PASS_RATES in " ".join(overrides) else None
    overrides = [o.replace(PASS_RATES, str(tmp_path / "pass_rates.parquet")) for o in overrides]
    env = {**os.environ, "RADGRPO_OUTPUTS": str(tmp_path / "outputs")}
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "radgrpo.cli.train", f"experiment={recipe}", f"data.dir={data}",
                             *overrides, *ONE_CHEAP_STEP], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1200)
    wall = time.monotonic() - start
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    (summary_path,) = (tmp_path / "outputs").rglob("summary.json")
    run_dir, summary = summary_path.parent, json.loads(summary_path.read_text())
    (step,) = [s["data"] for s in load_metrics(run_dir) if "actor/pg_loss" in s["data"]]
    print(f"{recipe}: " + ", ".join(f"{k}={step[k]:.4g}" for k in (
        "critic/score/mean", "actor/pg_loss", "actor/grad_norm", "groups/tied_frac", "timing_s/step")) + f", wall {wall:.1f} s")

    assert summary["status"] == "completed" and summary["steps_completed"] == 1
    assert math.isfinite(step["actor/pg_loss"]) and math.isfinite(step["actor/grad_norm"])
    assert Path(summary["model_path"]).name == f"{FAMILY.get(recipe, 'tiny_qwen2_5_vl')}-{build_fingerprint()}"
    for term in REWARD_TERMS[recipe]:
        assert f"reward/{term}/mean" in step, sorted(k for k in step if k.startswith("reward/"))
    verl = yaml.safe_load((run_dir / "verl_config.yaml").read_text())
    for key, value in PRESET_KEYS[recipe].items():
        for short, full in ABBREVIATIONS.items():
            key = key.replace(short, full) if key.startswith(short) else key
        assert node(verl, key) == value, (recipe, key)
    assert ("actor/kl_loss" in step) == node(verl, "actor_rollout_ref.actor.use_kl_loss")
    if recipe == "medgemma_mcqa":  # seed 004's LoRA targets (the option adds other families' fused names)
        assert set(SEED_004_TARGETS) <= set(node(verl, "actor_rollout_ref.model.target_modules"))
    # the preset's sampling chose the rows: a subset of sampling.size, or all 8
    trained = json.loads((run_dir / "data" / "train_ids.json").read_text())
    sizes = [int(o.split("=", 1)[1]) for o in overrides if o.startswith("sampling.size=")]
    assert len(trained) == (sizes[0] if sizes else 8), trained
    if inside is not None:  # sampling=hard kept only rows inside the pass-count window
        assert set(trained) <= inside, (trained, inside)
