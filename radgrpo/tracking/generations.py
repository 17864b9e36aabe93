"""The generations table a researcher reads after each validation: one row per validation sample
with the prompt text, the completion, the ground truth, the score and every reward component.

Images are NOT in the table by default: MIMIC-CXR, VinDr-CXR and PadChest are under data use
agreements that forbid sharing images with third parties, and wandb is one. `logger.upload_images=true`
opts in (with a one-time warning); grounding rows then show the image with the true boxes (green)
and the predicted boxes (red) drawn on it. Images are found by the row's ground truth in the
validation parquet files; a ground truth shared by several rows (every "no finding" row) names no
single image, so such rows get none rather than another patient's.
Builds plain rows here (no verl); radgrpo.engine.tracking_hooks logs them from verl's trainer.
"""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

# reward_extra_infos keys that are not components: verl's copy of the score, the sample key
NOT_COMPONENTS = {"reward", "score", "uid"}
TRUE_BOX_COLOUR = (0, 200, 0)
PRED_BOX_COLOUR = (230, 30, 30)
TABLE_KEY = "val/generations"

IMAGE_UPLOAD_WARNING = (
    "radgrpo: warning: logger.upload_images=true: validation images will be uploaded to wandb. "
    "MIMIC-CXR, VinDr-CXR and PadChest data use agreements forbid sharing their images with third parties."
)
_warned = False


def warn_image_upload(stream=None) -> None:
    """Print IMAGE_UPLOAD_WARNING once per process."""
    global _warned
    if not _warned:
        print(IMAGE_UPLOAD_WARNING, file=stream or sys.stderr)
        _warned = True


def component_keys(extra: dict[str, list], n: int) -> list[str]:
    """Reward components among verl's reward_extra_infos: numeric per-sample lists of length n."""
    keys = []
    for key, values in extra.items():
        if key in NOT_COMPONENTS or len(values) != n:
            continue
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
            keys.append(key)
    return sorted(keys)


def generation_rows(inputs: Sequence[str], outputs: Sequence[str], gts: Sequence[Any], scores: Sequence[float],
                    extra: dict[str, list], max_rows: int) -> tuple[list[str], list[list]]:
    """(columns, rows): prompt, completion, ground_truth, score, then each component; at most max_rows."""
    n = len(inputs)
    components = component_keys(extra, n)
    columns = ["prompt", "completion", "ground_truth", "score", *components]
    rows = []
    for i in range(min(n, max_rows)):
        rows.append([str(inputs[i]), str(outputs[i]), _text(gts[i]), _number(scores[i]),
                     *(_number(extra[key][i]) for key in components)])
    return columns, rows


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class ImageIndex:
    """Validation images by ground truth, from verl-format parquet files (`images`, `reward_model`)."""

    def __init__(self, parquet_files: Iterable[str]):
        import pyarrow.parquet as pq

        found: dict[str, Any] = {}
        repeated: set[str] = set()
        for path in parquet_files:
            table = pq.read_table(path, columns=["images", "reward_model"]).to_pylist()
            for row in table:
                gt = _text((row.get("reward_model") or {}).get("ground_truth"))
                images = row.get("images") or []
                if gt in found or gt in repeated:
                    repeated.add(gt)
                    found.pop(gt, None)
                elif images:
                    found[gt] = images[0]
        self._by_gt = found

    def image_for(self, ground_truth: Any):
        """The PIL image of the one row with this ground truth, or None."""
        entry = self._by_gt.get(_text(ground_truth))
        return load_image(entry) if entry is not None else None


def load_image(entry: Any):
    """A PIL image from a verl `images` entry: {"image": path or file:// URL}, {"bytes": ...} or a path."""
    from PIL import Image

    if isinstance(entry, dict):
        if entry.get("bytes"):
            return Image.open(io.BytesIO(entry["bytes"])).convert("RGB")
        entry = entry.get("image") or entry.get("path")
    path = str(entry).removeprefix("file://")
    return Image.open(path).convert("RGB") if Path(path).is_file() else None


def boxes_of(ground_truth: Any, completion: str) -> tuple[list, list] | None:
    """(true boxes, predicted boxes), normalised, for a grounding row; None for other tasks."""
    from radgrpo.data.schema import decode_ground_truth
    from radgrpo.rewards.boxes import gt_boxes, parse_boxes
    from radgrpo.rewards.text import answer_section

    gt = decode_ground_truth(ground_truth)
    truth = gt_boxes(gt) if gt.get("task") == "grounding" else None
    if truth is None:
        return None
    predicted, _, _ = parse_boxes(answer_section(completion), "auto", gt.get("image_size"))
    return truth, predicted


def draw_boxes(image, true_boxes: Sequence[Sequence[float]], predicted: Sequence[Sequence[float]]):
    """A copy of `image` with normalised [x1, y1, x2, y2] boxes drawn: truth green, prediction red."""
    from PIL import ImageDraw

    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width, height = out.size
    for boxes, colour in ((true_boxes, TRUE_BOX_COLOUR), (predicted, PRED_BOX_COLOUR)):
        for x1, y1, x2, y2 in boxes:
            draw.rectangle([x1 * (width - 1), y1 * (height - 1), x2 * (width - 1), y2 * (height - 1)],
                           outline=colour, width=max(1, min(width, height) // 100))
    return out


def generations_table(wandb, columns: list[str], rows: list[list], images: ImageIndex | None = None):
    """A wandb.Table of `rows`; with `images` (the opt-in), an `image` column with boxes drawn."""
    if images is None:
        return wandb.Table(columns=columns, data=rows)
    gt_col, completion_col = columns.index("ground_truth"), columns.index("completion")
    data = []
    for row in rows:
        image = images.image_for(row[gt_col])
        if image is not None:
            boxes = boxes_of(row[gt_col], row[completion_col])
            if boxes is not None:
                image = draw_boxes(image, *boxes)
        data.append([*row, wandb.Image(image) if image is not None else None])
    return wandb.Table(columns=[*columns, "image"], data=data)
