"""End to end through the tools on the toy COCO instances: tools/train.py trains the toy
Mask2Former for a few steps, tools/test.py evaluates its checkpoint and writes COCO results json,
per-image instance json and instance pictures."""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from dinoreg_dense.datasets.toy_instances import make_toy_coco_instances

from .conftest import REPO
from .test_train_toy import run_tool

CONFIG = str(REPO / "configs" / "toy_instance_mask2former_vittiny.py")
IMAGE_SIZE = (72, 100)
"""(H, W) of the toy's landscape images (every third is portrait, (W, H)): not square, so a
height / width swap anywhere shows."""


def test_train_then_test_writes_coco_results_and_instance_pictures(tmp_path):
    root = make_toy_coco_instances(tmp_path / "toy", num_train=4, num_val=3, image_size=IMAGE_SIZE)
    iters = 4
    trained = run_tool(
        "tools/train.py",
        CONFIG,
        "--data-root",
        str(root),
        "--work-dir",
        str(tmp_path / "work"),
        "--cfg-options",
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={iters}",
        f"default_hooks.checkpoint.interval={iters}",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    logged = re.findall(r"coco/segm_AP: (-?\d+\.\d+)", trained.stdout + trained.stderr)
    assert logged, trained.stdout[-2000:]

    out, show = tmp_path / "out", tmp_path / "show"
    tested = run_tool(
        "tools/test.py",
        CONFIG,
        str(tmp_path / "work" / f"iter_{iters}.pth"),
        "--data-root",
        str(root),
        "--work-dir",
        str(tmp_path / "test"),
        "--out",
        str(out),
        "--show-dir",
        str(show),
    )
    assert tested.returncode == 0, tested.stderr[-3000:]
    printed = ast.literal_eval(tested.stdout.strip().splitlines()[-1])
    assert printed["coco/segm_AP"] == pytest.approx(float(logged[-1]), abs=1e-4)
    assert {"coco/bbox_AP", "coco/segm_AP50"} <= printed.keys()

    gt = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    stems = sorted(Path(image["file_name"]).stem for image in gt["images"])
    assert sorted(p.stem for p in show.glob("*.png")) == stems
    assert sorted(p.stem for p in out.glob("0*.json")) == stems
    sizes = {(image["height"], image["width"]) for image in gt["images"]}
    assert sizes == {IMAGE_SIZE, IMAGE_SIZE[::-1]}  # landscape and portrait images
    for image in gt["images"]:
        # image | instances, one image pixel per file pixel, titles above
        picture = show / f"{Path(image['file_name']).stem}.png"
        file_width, file_height = Image.open(picture).size
        assert file_width == 2 * image["width"] and file_height > image["height"], picture

    # COCO results (one entry per kept instance, xywh) agree with the per-image json (xyxy)
    bbox_results = json.loads((out / "coco_results.bbox.json").read_text())
    segm_results = json.loads((out / "coco_results.segm.json").read_text())
    assert len(bbox_results) == len(segm_results) > 0
    categories = {c["id"] for c in gt["categories"]}
    assert {r["category_id"] for r in bbox_results} <= categories
    for image in gt["images"]:
        record = json.loads((out / f"{Path(image['file_name']).stem}.json").read_text())
        assert (record["height"], record["width"]) == (image["height"], image["width"])
        ours = sorted(
            (round(i["score"], 5), tuple(round(v, 3) for v in i["bbox_xyxy"]))
            for i in record["instances"]
        )
        theirs = sorted(
            (round(r["score"], 5), tuple(round(v, 3) for v in xywh_to_xyxy(r["bbox"])))
            for r in bbox_results
            if r["image_id"] == image["id"]
        )
        assert ours == theirs and len(ours) == 10  # test_cfg.top_k of the toy config
        for instance in record["instances"]:
            mask = mask_util.decode(instance["mask"])
            assert mask.shape == (image["height"], image["width"])
            if mask.any():
                rows, cols = np.nonzero(mask)
                box = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                assert box == instance["bbox_xyxy"]


def xywh_to_xyxy(box: list[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y + h]
