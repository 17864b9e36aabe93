"""Builders of small inputs in each seed format, with images made on the fly, for the prep tests.

(Named test_prep_* so it lives with the tests it serves; it holds no tests itself.)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from radgrpo.prep.config import PrepConfig
from radgrpo.prep.pipeline import PrepResult, run

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def png(path: Path, size=(40, 32), seed=0, mode="L") -> str:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return str(path)


def png_bytes(seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (28, 28), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def llava(rid: str, image, question: str, answer: str) -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                                              {"from": "gpt", "value": answer}], "id": rid}


GROUNDING_Q = "Could you indicate if there are any abnormalities on this Chest X-ray and their locations?"
REPORT_Q = "Write a radiology report for this Chest X-ray."


def radvlm_records(image: str) -> list[dict]:
    """A small RadVLM mix: grounding with 0/1/2 boxes, reports, classification, a conversation."""
    return [
        llava("vindr-cxr_0", image, GROUNDING_Q, "The findings include a nodule located at the coordinates [0.1, 0.2, 0.3, 0.4]."),
        llava("vindr-cxr_1", image, GROUNDING_Q, "No abnormalities or lesions are detected on this Chest X-ray."),
        llava("vindr-cxr-mono_2", image, "Where is the pleural effusion located in this Chest X-ray?",
              "It is at [0.5, 0.5, 0.9, 0.8] and [0.05, 0.6, 0.3, 0.95]."),
        llava("chest-imagenome_3", image, "Where is the right lung located in this Chest X-ray?",
              "The right lung is located at the coordinates [0.12, 0.1, 0.48, 0.8] on the image."),
        llava("mimic-cxr_4", image, REPORT_Q, "Heart size is normal. No focal consolidation."),
        llava("mimic-cxr_5", image, "Which abnormalities are present in this chest X-ray?", "Cardiomegaly, edema."),
        {"image": image, "id": "mimic-cxr-conv_6", "conversations": [
            {"from": "human", "value": "<image>\nIs there an effusion?"}, {"from": "gpt", "value": "Yes, on the left."},
            {"from": "human", "value": "How large is it?"}, {"from": "gpt", "value": "Small."}]},
    ]


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2))
    return path


def medvlthinker_parquet(path: Path, n: int = 4) -> Path:
    """The seed-002 MCQA trainset layout, images as {bytes, path} structs in parquet."""
    rows = [{"images": [{"bytes": png_bytes(i), "path": None}], "question": f"What is shown in case {i}?",
             "options": json.dumps({"A": "Normal", "B": "Pneumonia", "C": "Effusion", "D": "Mass"}),
             "answer_label": "ABCD"[i % 4], "answer": ["Normal", "Pneumonia", "Effusion", "Mass"][i % 4],
             "reasoning": "Look at the lungs." if i % 2 else "", "dataset_name": "pmc_vqa", "dataset_index": i}
            for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def chexpo_records(image_rel: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"<image>Is there cardiomegaly? ({i})"},
                          {"role": "assistant", "content": "<think>The heart is enlarged.</think><answer>yes</answer>"}],
             "image": image_rel, "question": f"Is there cardiomegaly? ({i})", "answer": "yes" if i % 2 else "no",
             "id": f"q{i}"} for i in range(3)]


def medgemma_records(image: str) -> dict:
    return {f"s{i}": {"question": "What is the primary finding?", "options": ["A. Normal", "B. Pneumonia", "C. Fracture", "D. Tumor"],
                      "correct_answer": "B", "correct_answer_explanation": "Consolidation in the right lower lobe",
                      "ImagePath": [image], "Indication": "Chest pain", "Findings": "Right lower lobe consolidation",
                      "Impression": "Pneumonia"} for i in range(3)}


def prep(overrides: list[str]) -> PrepResult:
    """Compose conf/prep.yaml with `overrides` (as on the command line) and run it in-process."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("prep", ["progress=false", *overrides])
    return run(PrepConfig.from_mapping(OmegaConf.to_container(cfg, resolve=True)), log=lambda _: None)


def rows(output: Path, split: str = "train") -> list[dict]:
    folder = Path(output) / split
    return pq.read_table(folder).to_pylist() if folder.exists() else []
