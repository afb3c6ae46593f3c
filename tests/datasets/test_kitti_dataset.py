"""KITTIDepthDataset reads the BTS / toolbox KITTI Eigen layout; the toy generator writes it."""

import logging
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from dinoreg_dense.datasets import KITTIDepthDataset, make_toy_kitti
from dinoreg_dense.datasets.kitti import KB_CROP_SIZE, kb_crop_window
from dinoreg_dense.evaluation import DepthMetric
from dinoreg_dense.registry import DATASETS

REPO = Path(__file__).resolve().parents[2]
SIZE = (60, 200)
CROP = (48, 160)


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return make_toy_kitti(tmp_path / "kitti", num_train=3, num_val=2, image_size=SIZE)


def disk_depth(path: str) -> np.ndarray:
    with Image.open(path) as depth:
        return np.asarray(depth).astype(np.float32) / 256


def test_toy_layout_is_the_toolbox_one(toy_root):
    train = (toy_root / "kitti_eigen_train.txt").read_text().splitlines()
    # focal: 721.5377 x 200 / 1242
    assert train[0] == (
        "2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png "
        "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02/0000000000.png 116.1896"
    )
    test = (toy_root / "kitti_eigen_test.txt").read_text().splitlines()
    assert len(test) == 3 and test[-1].split()[1] == "None"
    assert (toy_root / "input" / test[-1].split()[0]).is_file()
    with Image.open(toy_root / "gt_depth" / train[0].split()[1]) as depth:
        assert depth.mode == "I;16"


def test_sparse_depth_in_metres_and_none_lines_skipped(toy_root):
    dataset = KITTIDepthDataset(toy_root, split="test", kb_crop_size=None, test_mode=True)
    assert len(dataset) == 2 and dataset.num_without_depth == 1
    assert dataset.metainfo["max_depth"] == 80.0 and dataset.metainfo["min_depth"] == 1e-3
    for item in dataset:
        sample = item["data_samples"]
        depth = sample.gt_depth_map.numpy()
        np.testing.assert_array_equal(depth, disk_depth(sample.depth_map_path))
        assert sample.ori_shape == SIZE == depth.shape
        assert 0.05 < (depth > 0).mean() < 0.25  # a lidar: most pixels have no depth
        assert not depth[: int(0.3 * SIZE[0])].any()  # no return from the sky
        assert depth[depth > 0].min() >= 7.5 and depth.max() <= 75.0


def test_a_split_without_any_depth_is_an_error(toy_root):
    split = toy_root / "kitti_eigen_test.txt"
    split.write_text(
        "".join(f"{line.split()[0]} None 1.0\n" for line in split.read_text().splitlines())
    )
    with pytest.raises(ValueError, match=rf"'{split}' gives no depth map for any of its 3 images"):
        KITTIDepthDataset(toy_root, split="test")


def test_kb_crop_is_the_bottom_centre_of_image_and_depth(toy_root):
    dataset = DATASETS.build(
        dict(type="KITTIDepthDataset", data_root=str(toy_root), split="train", kb_crop_size=CROP)
    )
    item = dataset[1]
    sample = item["data_samples"]
    rows, cols = slice(SIZE[0] - CROP[0], SIZE[0]), slice(20, 180)  # left = (200 - 160) // 2
    assert kb_crop_window(*SIZE, CROP) == (rows, cols)
    np.testing.assert_array_equal(
        sample.gt_depth_map.numpy(), disk_depth(sample.depth_map_path)[rows, cols]
    )
    with Image.open(sample.img_path) as image:
        expected = np.asarray(image.convert("RGB"))[rows, cols].transpose(2, 0, 1)
    np.testing.assert_array_equal(item["inputs"].numpy(), expected)
    assert sample.ori_shape == sample.img_shape == CROP
    # the real crop of a real-sized frame (375 x 1242): rows 23:375, columns 13:1229
    assert kb_crop_window(375, 1242, KB_CROP_SIZE) == (slice(23, 375), slice(13, 1229))


def test_an_image_smaller_than_the_kb_crop_is_named(toy_root):
    dataset = KITTIDepthDataset(toy_root, split="train")  # 352 x 1216 of a 60 x 200 frame
    with pytest.raises(
        ValueError, match=r"image '.*0000000000.png' is 60x200, smaller than .*352x1216"
    ):
        dataset[0]


def test_kitti_recipe_pipeline_on_full_size_frames(tmp_path):
    piece = Config.fromfile(REPO / "configs" / "_base_" / "datasets" / "kitti.py")
    root = make_toy_kitti(tmp_path / "full", num_train=1, num_val=1, image_size=(375, 1242))
    train = KITTIDepthDataset(root, split="train", pipeline=piece.train_pipeline)
    torch.manual_seed(0)
    item = train[0]
    depth = item["data_samples"].gt_depth_map.numpy()
    assert depth.shape == tuple(item["inputs"].shape[1:]) == tuple(piece.crop_size)
    on_disk = disk_depth(item["data_samples"].depth_map_path)
    assert np.isin(depth, np.append(np.unique(on_disk), 0.0)).all()
    test = KITTIDepthDataset(root, split="test", pipeline=piece.test_pipeline, test_mode=True)
    assert tuple(test[0]["data_samples"].gt_depth_map.shape) == KB_CROP_SIZE


def test_missing_root_split_file_and_folders_are_named(toy_root, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)dataset not found at '.*nowhere'.*--layout kitti"
    ):
        KITTIDepthDataset(tmp_path / "nowhere")
    (toy_root / "kitti_eigen_test.txt").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"'.*kitti_eigen_test.txt' does not exist .*kitti_eigen_train"
    ):
        KITTIDepthDataset(toy_root, split="test")
    with pytest.raises(ValueError, match=r"unknown KITTI split 'val'"):
        KITTIDepthDataset(toy_root, split="val")
    (toy_root / "gt_depth").rename(toy_root / "depth")
    with pytest.raises(FileNotFoundError, match=rf"'{toy_root / 'gt_depth'}/' is missing"):
        KITTIDepthDataset(tmp_path)  # the parent holding kitti/ is found too


def test_missing_images_and_depth_maps_are_named(toy_root):
    line = (toy_root / "kitti_eigen_train.txt").read_text().splitlines()[1]
    depth = toy_root / "gt_depth" / line.split()[1]
    depth.unlink()
    with pytest.raises(FileNotFoundError, match=rf"'{depth}' does not exist"):
        KITTIDepthDataset(toy_root)
    image = toy_root / "input" / line.split()[0]
    image.unlink()
    with pytest.raises(FileNotFoundError, match=rf"image '{image}' is missing"):
        KITTIDepthDataset(toy_root)


@pytest.mark.parametrize(
    "pixels",
    [np.full(SIZE, 200, np.uint8), np.full((*SIZE, 3), 200, np.uint8)],
    ids=["8-bit", "rgb"],
)
def test_a_depth_map_that_is_not_16_bit_is_named(toy_root, pixels):
    line = (toy_root / "kitti_eigen_train.txt").read_text().splitlines()[0]
    depth = toy_root / "gt_depth" / line.split()[1]
    Image.fromarray(pixels).save(depth)
    with pytest.raises(
        ValueError, match=rf"depth map '{depth}' is .*16-bit PNGs holding metres x 256"
    ):
        KITTIDepthDataset(toy_root, kb_crop_size=None)[0]


def test_a_depth_map_of_another_size_is_named_before_the_kb_crop(toy_root):
    line = (toy_root / "kitti_eigen_train.txt").read_text().splitlines()[0]
    image, depth = toy_root / "input" / line.split()[0], toy_root / "gt_depth" / line.split()[1]
    Image.fromarray(np.ones((SIZE[0] + 4, SIZE[1]), np.uint16)).save(depth)  # crop would hide it
    with pytest.raises(
        ValueError,
        match=rf"image '{image}' is \(60, 200\) but its depth map '{depth}' is \(64, 200\)",
    ):
        KITTIDepthDataset(toy_root, kb_crop_size=CROP)[0]


def test_metric_skips_an_all_invalid_kitti_map_and_refuses_nan(toy_root, caplog):
    dataset = KITTIDepthDataset(toy_root, split="test", kb_crop_size=CROP, test_mode=True)
    metric = DepthMetric(crop="garg")
    metric.dataset_meta = dataset.metainfo
    samples = [item["data_samples"].to_dict() for item in dataset]
    samples[1]["gt_depth_map"] = torch.zeros(CROP)  # no lidar point at all
    for sample in samples:
        sample["pred_depth_map"] = torch.full(CROP, 20.0)
    with caplog.at_level(logging.WARNING, logger="mmengine"):
        metric.process({}, samples)
    scores = metric.compute_metrics(metric.results)
    assert scores["num_skipped"] == 1 and metric.max_depth == 80.0
    gt = samples[0]["gt_depth_map"]
    rows, cols = slice(int(0.40810811 * CROP[0]), int(0.99189189 * CROP[0])), slice(5, 154)
    valid = gt[rows, cols][gt[rows, cols] > 1e-3]
    assert scores["abs_rel"] == pytest.approx(((20.0 - valid).abs() / valid).mean().item())
    samples[0]["pred_depth_map"] = torch.full(CROP, float("nan"))
    with pytest.raises(ValueError, match=r"0000000000.png: the predicted depth map contains NaN"):
        metric.process({}, samples[:1])


def test_command_line_tool(tmp_path, monkeypatch, capsys):
    argv = ["make_toy_dataset.py", str(tmp_path / "cli"), "--layout", "kitti", "--num-train", "2"]
    monkeypatch.setattr(sys, "argv", argv + ["--num-val", "1", "--size", "24", "80"])
    runpy.run_path(str(REPO / "tools" / "make_toy_dataset.py"), run_name="__main__")
    assert "KITTIDepthDataset" in capsys.readouterr().out
    assert len(KITTIDepthDataset(tmp_path / "cli", split="train", kb_crop_size=None)) == 2
    assert len(KITTIDepthDataset(tmp_path / "cli", split="test", kb_crop_size=None)) == 1
