"""Synthetic chest-X-ray-like grounding data, for the embedded default and the tests.

No real radiograph may be downloaded here, yet a GRPO run must see real images and real boxes. Each
image is a grayscale 'chest': a dark background, two lung fields, a mediastinum, soft noise, and
zero to two bright elliptical 'lesions' whose bounding boxes (normalised to [0, 1]) are the ground
truth. About `no_finding_fraction` of the rows have no lesion ("no finding", an empty box list), as
in VinDr-CXR. Everything is drawn from one seed, so the same parameters give the same files.

Prompts come from the `prompt` group (`radgrpo.data.prompts`), the same templates radgrpo-prep and
the tiny model's warm start use. Rows follow verl's multimodal schema (see radgrpo.data.schema); images are referenced by path, as
verl keeps embedded bytes in host memory (verl issues #7391, #4995).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from radgrpo.data.prompts import PromptTemplate
from radgrpo.data.schema import encode_ground_truth
from radgrpo.data.writer import MANIFEST, DatasetWriter

DATA_SOURCE = "synthetic_grounding"
QUESTION = "Locate every abnormal bright lesion in this chest X-ray."


@dataclass(frozen=True)
class SyntheticGroundingSpec:
    num_train: int = 64
    num_val: int = 16
    image_size: int = 112
    no_finding_fraction: float = 0.2
    seed: int = 0
    prompt: dict | None = None   # the composed `prompt` group (conf/prompt/<style>.yaml); None: plain question
    min_pixels: int | None = None
    max_pixels: int | None = None
    # Every other row a landscape image of half the height (aspect ratio 2:1), so one micro-batch
    # holds images of two shapes - what families with aspect-dependent patch counts must merge.
    mixed_aspect_ratios: bool = False

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def draw_chest(rng: np.random.Generator, size: int, n_lesions: int,
               height: int | None = None) -> tuple[np.ndarray, list[list[float]]]:
    """One 8-bit grayscale image (`size` wide, `height` or `size` high) and its lesion boxes
    [x1, y1, x2, y2] in [0, 1]."""
    height = height or size
    yy, xx = np.mgrid[0:height, 0:size]
    yy, xx = yy / height, xx / size
    image = 0.12 + 0.05 * rng.standard_normal((height, size))
    for cx in (0.3, 0.7):  # lung fields: brighter ellipses
        image += 0.35 * (((xx - cx) / 0.17) ** 2 + ((yy - 0.5) / 0.33) ** 2 < 1)
    image += 0.2 * (np.abs(xx - 0.5) < 0.06)  # mediastinum
    boxes = []
    for _ in range(n_lesions):
        rx, ry = rng.uniform(0.05, 0.12, size=2)
        cx = rng.uniform(0.15 + rx, 0.85 - rx)
        cy = rng.uniform(0.2 + ry, 0.8 - ry)
        image += 0.6 * (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1)
        boxes.append([round(float(v), 4) for v in (cx - rx, cy - ry, cx + rx, cy + ry)])
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return pixels, sorted(boxes)


def _rows(spec: SyntheticGroundingSpec, split: str, count: int, image_dir: Path, final_dir: Path,
          rng: np.random.Generator):
    template = PromptTemplate.from_mapping(spec.prompt)
    for index in range(count):
        n_lesions = 0 if rng.random() < spec.no_finding_fraction else int(rng.integers(1, 3))
        height = spec.image_size // 2 if spec.mixed_aspect_ratios and index % 2 else spec.image_size
        pixels, boxes = draw_chest(rng, spec.image_size, n_lesions, height)
        name = f"{split}_{index:05d}.png"
        Image.fromarray(pixels, mode="L").save(image_dir / name)
        image = {"image": f"file://{(final_dir / name).resolve()}"}
        if spec.min_pixels:
            image["min_pixels"] = spec.min_pixels
        if spec.max_pixels:
            image["max_pixels"] = spec.max_pixels
        yield {
            "data_source": DATA_SOURCE,
            "prompt": template.render(QUESTION, "grounding", 1),
            "images": [image],
            "ability": "grounding",
            "reward_model": {"style": "rule", "ground_truth": encode_ground_truth(
                "grounding", boxes=boxes, image_size=[spec.image_size, height])},
            "extra_info": {
                "id": f"{DATA_SOURCE}-{split}-{index}",
                "split": split,
                "index": index,
                "question": QUESTION,
                "answer": json.dumps(boxes),
                "task": "grounding",
                "dataset": DATA_SOURCE,
                "label": "no_finding" if not boxes else f"{len(boxes)}_lesions",
            },
        }


def generate_synthetic_grounding(spec: SyntheticGroundingSpec, cache_dir: str | Path) -> Path:
    """Write (or reuse) the dataset for `spec`; returns its folder with train/, val/ and manifest.json."""
    target = Path(cache_dir) / "synthetic_grounding" / spec.fingerprint()
    if (target / MANIFEST).exists():
        return target
    rng = np.random.default_rng(spec.seed)
    with DatasetWriter(target) as writer:
        image_dir = writer.tmp / "images"  # published with the rows; rows reference target/images
        image_dir.mkdir()
        for split, count in (("train", spec.num_train), ("val", spec.num_val)):
            for row in _rows(spec, split, count, image_dir, target / "images", rng):
                writer.add(row, split=split)
        if (target / MANIFEST).exists():  # a concurrent process (another SLURM task) published it first
            return target  # leaving the block unpublished discards this copy
        writer.publish({"source": "generator:synthetic_grounding", "params": asdict(spec),
                        "counts": {"kept": writer.counts(), "dropped": {}}})
    return target
