"""tools/discover.py end to end on the toy VOC boxes with a tiny random backbone: every output
written and valid, COCO files load in pycocotools, CorLoc equals an independent recount; batching,
cropping and the checkpoint rule."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from dinoreg_dense.datasets import make_toy_voc_boxes
from dinoreg_dense.engine.discover import (
    DiscoverySettings,
    build_backbone,
    build_dataset,
    discover,
)

from ..integration.conftest import REPO

TOY_CONFIG = REPO / "configs" / "toy_discovery_vittiny.py"
NUM_IMAGES = 7


def load_tool():
    spec = importlib.util.spec_from_file_location("discover_tool", REPO / "tools" / "discover.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


discover_tool = load_tool()


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy_voc")
    make_toy_voc_boxes(root, num_images=NUM_IMAGES, image_size=(44, 60))  # not multiples of 8
    return root


def run_tool(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["discover.py", *map(str, args)])
    discover_tool.run_tool(discover_tool.main)


def iou(a: list[float], b: list[float]) -> float:
    """Plain-Python IoU of end-exclusive pixel boxes (independent of box_iou)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


# The toy config's backbone (patch 8, position table) and a tiny DINOv3 swapped in by
# --cfg-options (patch 16, RoPE, no table): the (44, 60) images are padded to 48 x 64.
BACKBONES = {
    "toy": (8, []),
    "dinov3": (16, ["--cfg-options", "backbone.arch=vits16_dinov3", "backbone.patch_size=16"]),
}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
@pytest.mark.parametrize("method", ["lost", "tokencut"])
def test_outputs_end_to_end(tmp_path, toy_root, monkeypatch, capsys, method, backbone):
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    patch, options = BACKBONES[backbone]
    run_tool(
        monkeypatch, TOY_CONFIG, "--data-root", toy_root, "--out", out, "--method", method,
        "--vis", 2, "--no-progress", "--threads", 1, *options,
    )  # fmt: skip
    described = capsys.readouterr().out
    assert f"/{patch} + 4 registers" in described and ("RoPE" in described) == (
        backbone == "dinov3"
    )
    predictions = json.loads((out / "predictions.json").read_text())
    corloc = json.loads((out / "corloc.json").read_text())
    assert predictions["method"] == corloc["method"] == method
    images = predictions["images"]
    assert [r["image_id"] for r in images] == [f"{i:06d}" for i in range(1, NUM_IMAGES + 1)]
    hits = 0
    for record in images:
        height, width = record["image_size"]
        assert (height, width) in ((44, 60), (60, 44))  # padded input: boxes clipped to the image
        x0, y0, x1, y1 = record["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        row, col = record["seed"]
        assert 0 <= row < -(-height // patch) and 0 <= col < -(-width // patch)
        best = max(iou(record["box"], gt) for gt in record["gt_boxes"])
        assert record["best_iou"] == pytest.approx(best, abs=1e-5)
        assert record["hit"] == (best >= 0.5)
        hits += best >= 0.5
    assert corloc["images"] == NUM_IMAGES and corloc["hits"] == hits
    assert 0 <= corloc["corloc"] <= 100
    assert corloc["corloc"] == pytest.approx(100 * hits / NUM_IMAGES)

    ground_truth = COCO(str(out / "ground_truth_coco.json"))
    detections = ground_truth.loadRes(str(out / "detections_coco.json"))
    assert sorted(detections.getImgIds()) == list(range(1, NUM_IMAGES + 1))
    first = detections.loadAnns(detections.getAnnIds(imgIds=[1]))[0]
    x0, y0, x1, y1 = images[0]["box"]
    assert first["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
    gt_first = ground_truth.loadAnns(ground_truth.getAnnIds(imgIds=[1]))
    assert len(gt_first) == len(images[0]["gt_boxes"])

    pictures = sorted((out / "vis").glob("*.png"))
    assert [p.stem for p in pictures] == ["000001", "000002"]
    with Image.open(pictures[0]) as picture:
        assert picture.width == 3 * 60  # three panels at the image's width


def test_batches_of_one_size_give_the_boxes_of_single_images(toy_root):
    cfg = Config.fromfile(TOY_CONFIG)
    backbone = build_backbone(cfg)
    dataset = build_dataset(cfg, str(toy_root))
    results = {}
    for batch_size in (1, 4):
        cfg.inputs.batch_size = batch_size
        settings = DiscoverySettings.from_config(cfg)
        records, _ = discover(backbone, dataset, settings, progress=False)
        results[batch_size] = [(r["box"], r["seed"]) for r in records]
    assert results[1] == results[4]


def test_crop_mode_crops_to_whole_patches(toy_root):
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.inputs.mode = "crop"
    records, _ = discover(
        build_backbone(cfg),
        build_dataset(cfg, str(toy_root)),
        DiscoverySettings.from_config(cfg),
        progress=False,
    )
    for record in records:
        assert record["image_size"] in ([40, 56], [56, 40])
        assert record["box"][2] <= record["image_size"][1]


def test_real_config_without_checkpoint_is_refused(tmp_path, toy_root, monkeypatch, capsys):
    config = REPO / "configs" / "voc07_lost_vits_reg.py"
    with pytest.raises(SystemExit) as exit_info:
        run_tool(monkeypatch, config, "--data-root", toy_root, "--out", tmp_path)
    assert exit_info.value.code == 1
    assert "--checkpoint" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "option, message",
    [
        (
            "backbone.arh=vits16_dinov3",
            "'arh' is not a key of backbone (RegisterViT) (did you mean",
        ),
        ("model.backbone.arch=vits16_dinov3", "'model' is not a key of the config's top level"),
    ],
)
def test_cfg_options_are_checked_against_the_discovery_schema(
    tmp_path, toy_root, monkeypatch, capsys, option, message
):
    with pytest.raises(SystemExit):
        run_tool(
            monkeypatch, TOY_CONFIG, "--data-root", toy_root, "--out", tmp_path / "out",
            "--cfg-options", option,
        )  # fmt: skip
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint_file_is_an_error_not_random_weights(tmp_path, toy_root, monkeypatch):
    with pytest.raises(SystemExit):
        run_tool(
            monkeypatch, TOY_CONFIG, "--data-root", toy_root, "--out", tmp_path / "out",
            "--checkpoint", tmp_path / "missing.pth",
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_picture_pixels_mark_the_boxes(tmp_path, toy_root, monkeypatch):
    out = tmp_path / "out"
    run_tool(monkeypatch, TOY_CONFIG, "--data-root", toy_root, "--out", out, "--vis", 1)
    with Image.open(out / "vis" / "000001.png") as picture:
        pixels = np.asarray(picture.convert("RGB"))
    green = (pixels[..., 1] > 180) & (pixels[..., 0] < 80) & (pixels[..., 2] < 110)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 70) & (pixels[..., 2] < 70)
    assert green[:, :60].any() and red[:, :60].any()


def test_a_checkpoint_mismatch_says_how_discovery_configs_spell_the_backbone(
    monkeypatch, toy_root, tmp_path, capsys
):
    """Checkpoint messages name model.backbone.*; discovery configs have a top-level backbone."""
    from dinoreg_dense.checkpoint import save_checkpoint
    from dinoreg_dense.registry import MODELS

    other = MODELS.build(dict(type="RegisterViT", arch="vits16_dinov3", depth=1))
    path = save_checkpoint(other, tmp_path / "dinov3_depth1.safetensors")
    with pytest.raises(SystemExit):
        run_tool(monkeypatch, TOY_CONFIG, "--data-root", toy_root, "--checkpoint", path)
    error = capsys.readouterr().err
    assert "model.backbone.arch=None" in error and str(path) in error
    assert "backbone.arch here (--cfg-options backbone.arch=None)" in error
