"""The validation generations table: rows with every reward component; no image unless
logger.upload_images opts in, then grounding rows show the image with true and predicted boxes.
Logged through radgrpo's verl hook into a real offline wandb run and read back from its records."""

import json
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from radgrpo.tracking.generations import (PRED_BOX_COLOUR, TRUE_BOX_COLOUR, ImageIndex, draw_boxes,
                                          generation_rows)
from radgrpo.tracking.offline import read_offline_run

GT_A = json.dumps({"task": "grounding", "boxes": [[0.1, 0.1, 0.5, 0.5]]})
GT_NONE = json.dumps({"task": "grounding", "boxes": []})
SAMPLES = dict(
    inputs=["user: find the lesion", "user: find the lesion", "user: find the lesion"],
    outputs=["<answer>[0.5, 0.5, 0.9, 0.9]</answer>", "<answer>No finding</answer>", "<answer>none</answer>"],
    gts=[GT_A, GT_NONE, GT_NONE],
    scores=[0.2, 0.8, 0.8],
    reward_extra_infos_dict={"reward": [0.2, 0.8, 0.8], "score": [0.2, 0.8, 0.8], "iou": [0.2, 0.8, 0.8],
                             "iou/matched_iou": [0.14, 0.0, 0.0], "uid": ["a", "b", "c"]},
)


def test_rows_hold_prompt_completion_truth_score_and_each_component():
    columns, rows = generation_rows(SAMPLES["inputs"], SAMPLES["outputs"], SAMPLES["gts"], SAMPLES["scores"],
                                    SAMPLES["reward_extra_infos_dict"], max_rows=2)
    assert columns == ["prompt", "completion", "ground_truth", "score", "iou", "iou/matched_iou"]
    assert rows[0] == ["user: find the lesion", SAMPLES["outputs"][0], GT_A, 0.2, 0.2, 0.14] and len(rows) == 2


def test_boxes_are_drawn_true_green_predicted_red():
    image = draw_boxes(Image.new("L", (101, 101)), [(0.1, 0.1, 0.5, 0.5)], [(0.6, 0.6, 0.9, 0.9)])
    assert image.getpixel((10, 30)) == TRUE_BOX_COLOUR and image.getpixel((60, 75)) == PRED_BOX_COLOUR
    assert image.getpixel((30, 30)) == (0, 0, 0)


def _val_parquet(tmp_path):
    paths = []
    for name in ("a", "n1", "n2"):
        path = tmp_path / f"{name}.png"
        Image.new("L", (64, 64), color=40).save(path)
        paths.append(path)
    rows = [{"images": [{"image": f"file://{p}"}], "reward_model": {"style": "rule", "ground_truth": gt}}
            for p, gt in zip(paths, [GT_A, GT_NONE, GT_NONE])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "val.parquet")
    return str(tmp_path / "val.parquet")


def test_image_index_finds_a_rows_image_and_none_for_a_shared_ground_truth(tmp_path):
    index = ImageIndex([_val_parquet(tmp_path)])
    assert index.image_for(GT_A).size == (64, 64)
    assert index.image_for(GT_NONE) is None  # several "no finding" rows: no single image to show


@pytest.mark.parametrize("upload_images", [False, True])
def test_table_logged_by_the_verl_hook_has_images_only_with_the_opt_in(tmp_path, monkeypatch, upload_images):
    import wandb

    from radgrpo.engine.tracking_hooks import log_generations_table

    for key, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_DATA_DIR": str(tmp_path / "data"),
                       "WANDB_CONFIG_DIR": str(tmp_path / "cfg"), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
                       "RADGRPO_UPLOAD_IMAGES": "1" if upload_images else "0"}.items():
        monkeypatch.setenv(key, value)
    val = _val_parquet(tmp_path)
    run = wandb.init(project="radgrpo-test", id="gentable", settings=wandb.Settings(console="off"))
    try:
        trainer = SimpleNamespace(logger=SimpleNamespace(logger={"wandb": wandb}), global_steps=0,
                                  config=SimpleNamespace(data=SimpleNamespace(val_files=[val])))
        log_generations_table(trainer, **SAMPLES)
    finally:
        run.finish()
        wandb.teardown()  # wandb keeps its settings (WANDB_DIR) per process: the next test gets its own
    offline = read_offline_run(tmp_path, "gentable")
    (table_file,) = offline.folders[0].glob("files/media/table/val/generations_0_*.table.json")
    table = json.loads(table_file.read_text())
    images = [p for p in offline.artifact_files if p.startswith("media/images/")]
    if upload_images:
        assert table["columns"][-1] == "image"
        assert len(set(images)) == 1  # the one row whose ground truth names a single image
    else:
        assert "image" not in table["columns"] and not images
        assert not [p for p in tmp_path.rglob("*.png") if "data" in p.parts or "wandb" in p.parts]
    assert table["columns"][:4] == ["prompt", "completion", "ground_truth", "score"] and len(table["data"]) == 3
