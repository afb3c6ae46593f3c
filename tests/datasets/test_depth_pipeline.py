"""The NYU / KITTI depth recipe pipelines (configs/_base_/datasets/{nyu,kitti}.py) never mix depth
values, keep image and depth aligned through rotation, flip and crop, and colour only the image."""

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from dinoreg_dense.datasets import NYUDepthDataset, build_pipeline, seed_pipeline

from .test_dense_base import COLOURS, DEPTH_MM, colour_blocks, uniform_colour

REPO = Path(__file__).resolve().parents[2]
NYU_PIECE = Config.fromfile(REPO / "configs" / "_base_" / "datasets" / "nyu.py")
NYU_SIZE = (480, 640)


def recipe(piece: Config = NYU_PIECE, rotate_p: float = 1.0) -> list[dict]:
    """The piece's training pipeline with the rotation always applied, to exercise it."""
    pipeline = copy.deepcopy(list(piece.train_pipeline))
    for transform in pipeline:
        if transform["type"] == "Rotate":
            transform["p"] = rotate_p
    return pipeline


def run(pipeline: list[dict], image: np.ndarray, depth: np.ndarray, seed: int) -> dict:
    """One pass of a training pipeline built as BaseDenseDataset builds it (depth as a mask)."""
    compose = build_pipeline(pipeline, additional_targets={"depth": "mask"})
    seed_pipeline(compose, seed)
    return compose(image=image, depth=depth)


@pytest.fixture(scope="module")
def unique_depth() -> tuple[np.ndarray, np.ndarray]:
    """A 480x640 image and a depth map whose valid values are all different, 10 % holes."""
    rng = np.random.default_rng(0)
    depth = (rng.permutation(NYU_SIZE[0] * NYU_SIZE[1]) + 1).astype(np.float32) / 30000
    depth = depth.reshape(NYU_SIZE)
    depth[rng.random(NYU_SIZE) < 0.1] = 0.0
    image = rng.integers(0, 256, (*NYU_SIZE, 3), dtype=np.uint8)
    return image, depth


@pytest.fixture(scope="module")
def nyu_block_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """480x640 colour-block PNGs whose depth is a function of the colour, in the NYU layout."""
    root = tmp_path_factory.mktemp("nyu_blocks")
    rng = np.random.default_rng(1)
    (root / "office_0001").mkdir()
    lines = []
    for i in range(3):
        index = colour_blocks(rng, *NYU_SIZE)
        rgb, depth = f"office_0001/rgb_{i:05d}.png", f"office_0001/sync_depth_{i:05d}.png"
        Image.fromarray(COLOURS[index]).save(root / rgb)
        Image.fromarray(DEPTH_MM[index]).save(root / depth)
        lines.append(f"{rgb} {depth} 518.8579\n")
    (root / "nyu_train.txt").write_text("".join(lines))
    return root


def test_recipe_depth_values_are_input_values_or_invalid(unique_depth):
    image, depth = unique_depth
    allowed = np.append(np.unique(depth), 0.0)
    for seed in range(8):
        out = run(recipe(), image, depth, seed)
        assert out["depth"].shape == out["image"].shape[:2] == tuple(NYU_PIECE.crop_size)
        assert out["depth"].dtype == np.float32
        assert np.isin(out["depth"], allowed).all()  # nearest neighbour: nothing interpolated
        assert any(name == "Rotate" for name, _ in out["applied_transforms"])


def test_a_config_asking_for_bilinear_depth_still_gets_nearest(unique_depth):
    image, depth = unique_depth
    pipeline = [dict(type="Rotate", limit=(2.0, 2.0), mask_interpolation=cv2.INTER_LINEAR, p=1)]
    out = run(pipeline, image, depth, 0)
    assert np.isin(out["depth"], np.append(np.unique(depth), 0.0)).all()


def test_rotation_fills_depth_with_invalid_and_the_image_with_the_mean_colour(unique_depth):
    image, _ = unique_depth
    rotate = next(t for t in NYU_PIECE.train_pipeline if t["type"] == "Rotate")
    assert rotate["limit"] == 2.5 and rotate["p"] == 0.5
    full = np.full(NYU_SIZE, 3.0, np.float32)
    out = run([dict(rotate, limit=(2.5, 2.5), p=1.0)], image, full, 0)
    # 2.5 deg about the centre uncovers ~14 rows at the left and right ends of the top edge
    for row, col in ((0, 0), (0, NYU_SIZE[1] - 1), (NYU_SIZE[0] - 1, 0)):
        corner = (slice(row, row + 1), slice(col, col + 1))
        assert out["depth"][corner].item() == 0.0
        np.testing.assert_array_equal(out["image"][corner][0, 0], rotate["fill"])
    assert set(np.unique(out["depth"])) == {0.0, 3.0}
    assert 0.005 < (out["depth"] == 0).mean() < 0.05


def test_recipe_keeps_image_and_depth_aligned(nyu_block_root):
    dataset = NYUDepthDataset(nyu_block_root, split="train", pipeline=recipe())
    torch.manual_seed(0)
    items = [dataset[i] for _ in range(3) for i in range(len(dataset))]
    assert {item["data_samples"].flip for item in items} == {True, False}
    checked = 0
    for item in items:
        sample = item["data_samples"]
        assert tuple(sample.gt_depth_map.shape) == sample.img_shape == tuple(NYU_PIECE.crop_size)
        # colour aug changes the colours: align on the image before it, via the depth alone
        index = uniform_colour(item["inputs"].numpy().transpose(1, 2, 0))
        inside = index >= 0
        checked += inside.sum()
        expected = DEPTH_MM[index[inside]].astype(np.float32) / 1000
        np.testing.assert_array_equal(sample.gt_depth_map.numpy()[inside], expected)
    # the colour aug (p 0.5) leaves about half of the images with exact cube colours
    assert checked > 0.2 * len(items) * np.prod(NYU_PIECE.crop_size)


def test_recipe_without_colour_aug_aligns_every_uniform_pixel(nyu_block_root):
    pipeline = [t for t in recipe() if t["type"] != "GammaBrightnessColorAug"]
    dataset = NYUDepthDataset(nyu_block_root, split="train", pipeline=pipeline)
    torch.manual_seed(1)
    for i in range(len(dataset)):
        item = dataset[i]
        sample = item["data_samples"]
        index = uniform_colour(item["inputs"].numpy().transpose(1, 2, 0))
        assert (index >= 0).mean() > 0.3  # the interiors of the 8x8 blocks
        expected = DEPTH_MM[index[index >= 0]].astype(np.float32) / 1000
        np.testing.assert_array_equal(sample.gt_depth_map.numpy()[index >= 0], expected)


def test_colour_aug_changes_the_image_only(unique_depth):
    image, depth = unique_depth
    colour = next(t for t in NYU_PIECE.train_pipeline if t["type"] == "GammaBrightnessColorAug")
    out = run([dict(colour, p=1.0)], image, depth, 0)
    np.testing.assert_array_equal(out["depth"], depth)
    assert out["image"].dtype == np.uint8
    assert np.abs(out["image"].astype(int) - image).mean() > 2


def test_colour_aug_matches_its_formula():
    image = np.array([[[0, 64, 128], [200, 255, 30]]], np.uint8)
    out = run([dict(type="GammaBrightnessColorAug", p=1.0)], image, np.ones((1, 2), np.float32), 3)
    gamma, brightness, colour = (
        out["applied_transforms"][0][1][k] for k in ("gamma", "brightness", "colour")
    )
    expected = 255 * (image / 255.0) ** gamma * brightness * colour
    np.testing.assert_array_equal(out["image"], np.clip(np.rint(expected), 0, 255))
    # the toolbox's variant: gamma on raw 0-255 values
    toolbox = dict(type="GammaBrightnessColorAug", intensity_scale=1.0, gamma_range=(1.1, 1.1))
    out = run(
        [dict(toolbox, brightness_range=(1, 1), color_range=(1, 1), p=1.0)],
        image,
        np.ones((1, 2), np.float32),
        0,
    )
    assert out["image"][0, 0, 2] == round(128**1.1) == 208


@pytest.mark.parametrize(
    "bad", [dict(gamma_range=(1.1, 0.9)), dict(color_range=(0, 1)), dict(intensity_scale=0)]
)
def test_colour_aug_rejects_bad_ranges(bad):
    with pytest.raises(ValueError, match="GammaBrightnessColorAug"):
        build_pipeline([dict(type="GammaBrightnessColorAug", **bad)])
