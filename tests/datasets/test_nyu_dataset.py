"""NYUDepthDataset reads the BTS / toolbox NYU layout; the toy generator writes exactly that."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.datasets import NYUDepthDataset, make_toy_nyu
from dinoreg_dense.datasets.toy_depth import make_toy_depth_sample, toy_depth_rng
from dinoreg_dense.registry import DATASETS
from dinoreg_dense.structures import INVALID_DEPTH

from .test_dense_base import COLOURS, DEPTH_MM, TRAIN_PIPELINE, colour_blocks, uniform_colour

REPO = Path(__file__).resolve().parents[2]
SIZE = (48, 64)
QUANTISATION = 0.5e-3 + 1e-6  # metres: depth is rounded to whole millimetres on disk


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_nyu(tmp_path_factory.mktemp("toy_nyu"), num_train=3, num_val=2, image_size=SIZE)


@pytest.fixture
def block_root(tmp_path: Path) -> Path:
    """Colour-block PNG images whose depth is a function of the colour, in the NYU layout.

    Lines start with '/' as in BTS's lists; PNG keeps the colours exact, so alignment after the
    pipeline can be checked pixel by pixel.
    """
    rng = np.random.default_rng(0)
    lines = []
    for i, (height, width) in enumerate([(48, 64), (42, 30), (36, 50)]):
        (tmp_path / "kitchen_0001a").mkdir(exist_ok=True)
        rgb, depth = f"kitchen_0001a/rgb_{i:05d}.png", f"kitchen_0001a/sync_depth_{i:05d}.png"
        index = colour_blocks(rng, height, width)
        Image.fromarray(COLOURS[index]).save(tmp_path / rgb)
        Image.fromarray(DEPTH_MM[index]).save(tmp_path / depth)
        lines.append(f"/{rgb} /{depth} 518.8579\n")
    (tmp_path / "nyu_train.txt").write_text("".join(lines))
    return tmp_path


def disk_depth(sample) -> np.ndarray:
    with Image.open(sample.depth_map_path) as depth:
        return np.asarray(depth).astype(np.float32) / 1000


def test_toy_dataset_reads_back_the_scene_depth(toy_root):
    for split, count in (("train", 3), ("test", 2)):
        dataset = NYUDepthDataset(toy_root, split=split, test_mode=True)
        assert len(dataset) == count
        for index in range(count):
            sample = dataset[index]["data_samples"]
            image, depth = make_toy_depth_sample(toy_depth_rng(0, split, index), *SIZE)
            loaded = sample.gt_depth_map.numpy()
            assert loaded.dtype == np.float32 and loaded.shape == SIZE
            np.testing.assert_array_equal(loaded == INVALID_DEPTH, depth == 0)
            assert np.abs(loaded - depth).max() <= QUANTISATION
            valid = loaded[loaded > 0]
            assert valid.min() >= 1.0 and valid.max() <= 10.0
            assert 0 < (loaded == 0).mean() < 0.1  # some Kinect-like holes, not many
            assert sample.depth_map_path.endswith(f"sync_depth_{index:05d}.png")
            jpeg = dataset[index]["inputs"].numpy().transpose(1, 2, 0).astype(np.float32)
            assert np.abs(jpeg - image).mean() < 8  # JPEG, chroma subsampled; another image: ~50
    assert dataset.metainfo["max_depth"] == 10.0


def test_toy_dataset_is_deterministic_and_in_the_nyu_layout(toy_root, tmp_path):
    lines = (toy_root / "nyu_train.txt").read_text().splitlines()
    # NYU's focal length scaled from 640 to 64 pixels wide
    assert lines[0] == "toy_train_0000/rgb_00000.jpg toy_train_0000/sync_depth_00000.png 51.8858"
    with Image.open(toy_root / "toy_test" / "sync_depth_00001.png") as depth:
        assert depth.mode == "I;16"
    again = make_toy_nyu(tmp_path / "again", num_train=1, num_val=2, image_size=SIZE)
    other = make_toy_nyu(tmp_path / "other", num_train=0, num_val=1, image_size=SIZE, seed=1)
    name = "toy_test/sync_depth_00000.png"
    assert (again / name).read_bytes() == (toy_root / name).read_bytes()
    assert (other / name).read_bytes() != (toy_root / name).read_bytes()


def test_toy_images_darken_with_depth(toy_root):
    dataset = NYUDepthDataset(toy_root, split="train", test_mode=True)
    brightness, depth = [], []
    for item in dataset:
        valid = item["data_samples"].gt_depth_map > 0
        brightness.append(item["inputs"].float().mean(0)[valid])
        depth.append(item["data_samples"].gt_depth_map[valid])
    correlation = torch.corrcoef(torch.stack([torch.cat(brightness), torch.cat(depth)]))[0, 1]
    assert correlation < -0.2


@pytest.mark.parametrize(
    "crop",
    [
        dict(type="RandomCropCatMax", height=40, width=40),
        dict(type="RandomCrop", height=24, width=24),
    ],
)
def test_train_pipeline_keeps_image_and_depth_aligned(block_root, crop):
    pipeline = [TRAIN_PIPELINE[0], crop, TRAIN_PIPELINE[2]]
    dataset = NYUDepthDataset(block_root, split="train", pipeline=pipeline)
    torch.manual_seed(0)
    items = [dataset[i] for _ in range(6) for i in range(len(dataset))]
    assert {item["data_samples"].flip for item in items} == {True, False}
    num_checked = 0
    for item in items:
        sample = item["data_samples"]
        assert tuple(sample.gt_depth_map.shape) == sample.img_shape
        assert max(sample.img_shape) <= crop["height"]
        index = uniform_colour(item["inputs"].numpy().transpose(1, 2, 0))
        checked = index >= 0
        num_checked += checked.sum()
        expected = DEPTH_MM[index[checked]].astype(np.float32) / 1000
        np.testing.assert_array_equal(sample.gt_depth_map.numpy()[checked], expected)
    assert num_checked > 0.2 * len(items) * crop["height"] ** 2


def test_flip_mirrors_the_toy_depth_exactly(toy_root):
    dataset = NYUDepthDataset(toy_root, split="train", pipeline=[dict(type="HorizontalFlip", p=1)])
    sample = dataset[1]["data_samples"]
    assert sample.flip
    np.testing.assert_array_equal(sample.gt_depth_map.numpy(), disk_depth(sample)[:, ::-1])


def test_test_mode_keeps_the_depth_at_its_size_on_disk(toy_root):
    pipeline = [dict(type="ResizeToScale", scale=(96, 80))]
    dataset = DATASETS.build(
        dict(type="NYUDepthDataset", data_root=str(toy_root), split="test", pipeline=pipeline)
        | dict(test_mode=True)
    )
    assert isinstance(dataset, NYUDepthDataset)
    item = dataset[0]
    sample = item["data_samples"]
    np.testing.assert_array_equal(sample.gt_depth_map.numpy(), disk_depth(sample))
    assert sample.ori_shape == SIZE != sample.img_shape == tuple(item["inputs"].shape[1:])


def test_depth_scale_and_a_parent_folder_holding_nyu(block_root, tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "nyu").symlink_to(block_root)
    sample = NYUDepthDataset(parent, depth_scale=256.0, test_mode=True)[0]["data_samples"]
    with Image.open(sample.depth_map_path) as depth:
        expected = np.asarray(depth).astype(np.float32) / 256
    np.testing.assert_array_equal(sample.gt_depth_map.numpy(), expected)


def test_missing_root_and_split_files_are_named(block_root, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"(?s)dataset not found at '.*nowhere'.*nyu_train.txt"
    ):
        NYUDepthDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"'.*nyu_test.txt' does not exist .*nyu_train"):
        NYUDepthDataset(block_root, split="test")
    with pytest.raises(ValueError, match=r"unknown NYU split 'val'"):
        NYUDepthDataset(block_root, split="val")
    split_file = block_root / "nyu_train.txt"
    split_file.write_text("kitchen_0001a/rgb_00000.png\n")
    with pytest.raises(ValueError, match=rf"line 1 of split file '{split_file}'"):
        NYUDepthDataset(block_root)
    split_file.write_text("\n")
    with pytest.raises(ValueError, match=rf"split file '{split_file}' is empty"):
        NYUDepthDataset(block_root)


def test_missing_images_and_depth_maps_are_named(block_root):
    depth = block_root / "kitchen_0001a" / "sync_depth_00001.png"
    depth.unlink()
    with pytest.raises(FileNotFoundError, match=rf"'{depth}' does not exist"):
        NYUDepthDataset(block_root)
    image = block_root / "kitchen_0001a" / "rgb_00002.png"
    image.unlink()
    with pytest.raises(FileNotFoundError, match=rf"image '{image}' is missing"):
        NYUDepthDataset(block_root)


@pytest.mark.parametrize(
    "pixels",
    [np.full((48, 64), 200, np.uint8), np.full((48, 64, 3), 200, np.uint8)],
    ids=["8-bit", "rgb"],
)
def test_a_depth_map_that_is_not_16_bit_is_named(block_root, pixels):
    depth = block_root / "kitchen_0001a" / "sync_depth_00000.png"
    Image.fromarray(pixels).save(depth)
    dataset = NYUDepthDataset(block_root)
    message = rf"depth map '{depth}' is .*16-bit PNGs holding metres x 1000"
    with pytest.raises(ValueError, match=message):
        dataset[0]


def test_a_depth_map_of_another_size_is_named(block_root):
    depth = block_root / "kitchen_0001a" / "sync_depth_00000.png"
    Image.fromarray(np.ones((5, 5), np.uint16)).save(depth)
    with pytest.raises(ValueError, match=rf"its depth map '{depth}' is \(5, 5\)"):
        NYUDepthDataset(block_root)[0]


def test_command_line_tool(tmp_path, monkeypatch, capsys):
    argv = ["make_toy_dataset.py", str(tmp_path / "cli"), "--layout", "nyu", "--num-train", "2"]
    monkeypatch.setattr(sys, "argv", argv + ["--num-val", "1", "--size", "24", "32"])
    runpy.run_path(str(REPO / "tools" / "make_toy_dataset.py"), run_name="__main__")
    assert "NYUDepthDataset" in capsys.readouterr().out
    assert len(NYUDepthDataset(tmp_path / "cli", split="train")) == 2
    assert len(NYUDepthDataset(tmp_path / "cli", split="test")) == 1
