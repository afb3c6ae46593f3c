"""BaseDenseDataset knows no task: a depth and an instance dataset defined here run through it.

Images are made of colours that are corners of the RGB cube and the annotations are functions of
those colours, so alignment after resize, crop and flip can be checked pixel by pixel.
"""

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.datasets import BaseDenseDataset
from dinoreg_dense.structures import INVALID_DEPTH, DenseDataSample

# No corner of the cube is a mix of the others, so a bilinearly resized pixel that shows one of
# them exactly, as do its 8 neighbours, lies inside a region of that colour.
COLOURS = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)], np.uint8)
# Depth per colour in millimetres as NYU stores it (16-bit PNG); colour 0 has no measurement.
DEPTH_MM = np.array([0, 800, 1500, 2250, 3000, 4100, 5600, 9999], np.uint16)
TRAIN_PIPELINE = [
    dict(type="RandomResize", scale=(96, 48), ratio_range=(0.5, 2.0)),
    dict(type="RandomCropCatMax", height=40, width=40),
    dict(type="HorizontalFlip", p=0.5),
]
IMAGE_SIZES = [(48, 64), (42, 30), (36, 50)]


def metres(millimetres: np.ndarray) -> np.ndarray:
    """float32 metres from uint16 millimetres, exactly as the datasets below convert them."""
    return millimetres.astype(np.float32) / 1000


class DepthDataset(BaseDenseDataset):
    """``<name>_rgb.png`` images with ``<name>_depth.png`` 16-bit depth in millimetres."""

    targets: ClassVar[tuple[str, ...]] = ("depth",)

    def __init__(self, root: Path, pipeline: list[dict], test_mode: bool = False) -> None:
        records = [
            dict(img_path=image, depth_map_path=image.with_name(image.name.replace("rgb", "depth")))
            for image in sorted(root.glob("*_rgb.png"))
        ]
        super().__init__(records, pipeline=pipeline, test_mode=test_mode)

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        with Image.open(record["depth_map_path"]) as depth:
            return dict(depth=metres(np.asarray(depth)))


class InstanceDataset(BaseDenseDataset):
    """``<name>.png`` images, ``<name>.json`` labels and boxes, ``<name>_ids.png`` instance ids.

    Pixel value i of the id map belongs to the i-th instance of the JSON (0 = none).
    """

    targets: ClassVar[tuple[str, ...]] = ("bboxes", "masks")

    def __init__(self, root: Path, pipeline: list[dict], test_mode: bool = False) -> None:
        records = [
            dict(img_path=ann.with_suffix(".png"), ann_path=ann)
            for ann in sorted(root.glob("*.json"))
        ]
        super().__init__(records, pipeline=pipeline, test_mode=test_mode)

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        instances = json.loads(record["ann_path"].read_text())
        with Image.open(record["ann_path"].with_name(record["ann_path"].stem + "_ids.png")) as ids:
            ids = np.asarray(ids)
        return dict(
            labels=np.array([instance["label"] for instance in instances], np.int64),
            bboxes=np.array([instance["bbox"] for instance in instances], np.float32).reshape(
                -1, 4
            ),
            masks=(ids == np.arange(1, len(instances) + 1)[:, None, None]).astype(np.uint8),
        )


def colour_blocks(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) colour indices in 8 x 8 pixel blocks."""
    blocks = rng.integers(0, len(COLOURS), (height // 8 + 1, width // 8 + 1))
    return blocks.repeat(8, 0).repeat(8, 1)[:height, :width]


@pytest.fixture
def depth_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, (height, width) in enumerate(IMAGE_SIZES):
        index = colour_blocks(rng, height, width)
        Image.fromarray(COLOURS[index]).save(tmp_path / f"{i}_rgb.png")
        Image.fromarray(DEPTH_MM[index]).save(tmp_path / f"{i}_depth.png")
    return tmp_path


def write_instances(root: Path, name: str, size: tuple[int, int], rng: np.random.Generator) -> None:
    """Non-touching rectangles, one per 16 x 16 cell with probability 3/4, coloured by label."""
    height, width = size
    ids = np.zeros(size, np.uint8)
    instances = []
    for y in range(0, height - 15, 16):
        for x in range(0, width - 15, 16):
            if rng.random() < 0.25:
                continue
            y0, x0 = y + int(rng.integers(1, 5)), x + int(rng.integers(1, 5))
            y1, x1 = y0 + int(rng.integers(4, 11)), x0 + int(rng.integers(4, 11))
            instances.append(dict(label=int(rng.integers(1, len(COLOURS))), bbox=[x0, y0, x1, y1]))
            ids[y0:y1, x0:x1] = len(instances)
    labels = np.array([0] + [instance["label"] for instance in instances])
    Image.fromarray(COLOURS[labels[ids]]).save(root / f"{name}.png")
    Image.fromarray(ids).save(root / f"{name}_ids.png")
    (root / f"{name}.json").write_text(json.dumps(instances))


@pytest.fixture
def instance_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i, size in enumerate(IMAGE_SIZES):
        write_instances(tmp_path, str(i), size, rng)
    write_instances(tmp_path, "empty", (12, 14), rng)  # too small for any rectangle
    return tmp_path


def uniform_colour(image: np.ndarray) -> np.ndarray:
    """(H, W) index into COLOURS where a pixel and its 8 neighbours all show it exactly, else -1."""
    height, width = image.shape[:2]
    match = (image[:, :, None, :] == COLOURS).all(-1)
    index = np.where(match.any(-1), match.argmax(-1), -1)
    padded = np.pad(index, 1, constant_values=-2)
    same = np.ones((height, width), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= padded[dy : dy + height, dx : dx + width] == index
    return np.where(same, index, -1)


def epochs(dataset: BaseDenseDataset, num: int = 6) -> list[dict]:
    torch.manual_seed(0)
    return [dataset[i] for _ in range(num) for i in range(len(dataset))]


def mask_extent(mask: np.ndarray) -> np.ndarray:
    """Pixel x0, y0, x1, y1 (exclusive) of the true pixels of an (H, W) mask."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def test_depth_follows_resize_crop_and_flip(depth_root):
    items = epochs(DepthDataset(depth_root, TRAIN_PIPELINE))
    assert {item["data_samples"].flip for item in items} == {True, False}
    expected = metres(DEPTH_MM)
    for item in items:
        sample = item["data_samples"]
        assert isinstance(sample, DenseDataSample)
        image = item["inputs"].numpy().transpose(1, 2, 0)
        depth = sample.gt_depth_map
        assert depth.dtype == torch.float32 and tuple(depth.shape) == sample.img_shape
        assert sample.depth_map_path.endswith("_depth.png") and sample.img_path.endswith("_rgb.png")
        index = uniform_colour(image)
        checked = index >= 0
        assert checked.mean() > 0.2
        np.testing.assert_array_equal(depth.numpy()[checked], expected[index[checked]])


def test_depth_values_are_never_interpolated(tmp_path):
    # Every pixel its own depth and a third of them invalid: any interpolation makes new values.
    rng = np.random.default_rng(1)
    for i, (height, width) in enumerate(IMAGE_SIZES):
        depth = rng.integers(500, 10000, (height, width)).astype(np.uint16)
        depth[rng.random((height, width)) < 0.3] = 0
        Image.fromarray(COLOURS[colour_blocks(rng, height, width)]).save(tmp_path / f"{i}_rgb.png")
        Image.fromarray(depth).save(tmp_path / f"{i}_depth.png")
    dataset = DepthDataset(tmp_path, TRAIN_PIPELINE)
    for item in epochs(dataset):
        sample = item["data_samples"]
        with Image.open(sample.depth_map_path) as on_disk:
            values_on_disk = set(metres(np.asarray(on_disk)).ravel().tolist())
        values = set(sample.gt_depth_map.unique().tolist())
        assert values <= values_on_disk and INVALID_DEPTH in values


def test_depth_test_mode_keeps_the_depth_on_disk(depth_root):
    pipeline = [dict(type="ResizeToScale", scale=(96, 80))]
    sample = DepthDataset(depth_root, pipeline, test_mode=True)[0]["data_samples"]
    with Image.open(sample.depth_map_path) as on_disk:
        expected = metres(np.asarray(on_disk))
    np.testing.assert_array_equal(sample.gt_depth_map.numpy(), expected)
    assert sample.ori_shape == expected.shape != sample.img_shape


def check_instances(item: dict) -> None:
    """Masks cover exactly the rectangles of their label's colour; boxes are their extents."""
    sample = item["data_samples"]
    image = item["inputs"].numpy().transpose(1, 2, 0)
    instances = sample.gt_instances
    num = len(instances)
    assert instances.labels.dtype == torch.int64 and tuple(instances.labels.shape) == (num,)
    assert instances.bboxes.dtype == torch.float32 and tuple(instances.bboxes.shape) == (num, 4)
    assert instances.masks.dtype == torch.bool
    assert tuple(instances.masks.shape) == (num, *sample.img_shape)
    masks, labels, bboxes = (instances[k].numpy() for k in ("masks", "labels", "bboxes"))
    index = uniform_colour(image)
    assert not masks[:, index == 0].any()
    shape_pixels = index > 0
    assert (masks[:, shape_pixels].sum(0) == 1).all()
    if shape_pixels.any():
        owner = masks[:, shape_pixels].argmax(0)
        np.testing.assert_array_equal(labels[owner], index[shape_pixels])
    for mask, bbox in zip(masks, bboxes, strict=True):
        if mask.any():
            np.testing.assert_allclose(bbox, mask_extent(mask), atol=1.0)
        else:  # a sliver of box left by the crop, thinner than a pixel
            assert min(bbox[2] - bbox[0], bbox[3] - bbox[1]) < 1


def test_instances_follow_resize_crop_and_flip(instance_root):
    dataset = InstanceDataset(instance_root, TRAIN_PIPELINE)
    on_disk = [len(dataset.load_annotations(record)["labels"]) for record in dataset.records]
    items = epochs(dataset)
    assert {item["data_samples"].flip for item in items} == {True, False}
    kept = [len(item["data_samples"].gt_instances) for item in items]
    # The crop drops instances in some samples, not in all, and no sample gains any.
    assert all(n <= total for n, total in zip(kept, on_disk * 6, strict=True))
    assert any(n < total for n, total in zip(kept, on_disk * 6, strict=True))
    assert any(0 < n == total for n, total in zip(kept, on_disk * 6, strict=True))
    for item in items:
        check_instances(item)
        assert item["data_samples"].ann_path.endswith(".json")


def test_flipped_boxes_are_mirrored(instance_root):
    flip = InstanceDataset(instance_root, [dict(type="HorizontalFlip", p=1.0)])
    plain = InstanceDataset(instance_root, [dict(type="HorizontalFlip", p=0.0)])
    for index in range(len(flip)):
        flipped, original = flip[index]["data_samples"], plain[index]["data_samples"]
        assert flipped.flip and not original.flip
        width = original.img_shape[1]
        x0, y0, x1, y1 = original.gt_instances.bboxes.T
        mirrored = torch.stack([width - x1, y0, width - x0, y1], dim=1)
        torch.testing.assert_close(flipped.gt_instances.bboxes, mirrored, atol=1e-3, rtol=0)
        assert torch.equal(flipped.gt_instances.masks, original.gt_instances.masks.flip(-1))
        assert torch.equal(flipped.gt_instances.labels, original.gt_instances.labels)


def test_instances_test_mode_and_an_image_without_instances(instance_root):
    pipeline = [dict(type="ResizeToScale", scale=(96, 80))]
    dataset = InstanceDataset(instance_root, pipeline, test_mode=True)
    for index, record in enumerate(dataset.records):
        sample = dataset[index]["data_samples"]
        expected = dataset.load_annotations(record)
        np.testing.assert_array_equal(sample.gt_instances.bboxes.numpy(), expected["bboxes"])
        np.testing.assert_array_equal(sample.gt_instances.masks.numpy(), expected["masks"] > 0)
        assert tuple(sample.gt_instances.masks.shape[1:]) == sample.ori_shape != sample.img_shape
    empty = dataset.records.index(next(r for r in dataset.records if "empty" in str(r["ann_path"])))
    test_sample = dataset[empty]["data_samples"]
    train_sample = InstanceDataset(instance_root, TRAIN_PIPELINE)[empty]["data_samples"]
    for sample, shape in ((test_sample, "ori_shape"), (train_sample, "img_shape")):
        assert len(sample.gt_instances) == 0
        assert tuple(sample.gt_instances.bboxes.shape) == (0, 4)
        assert tuple(sample.gt_instances.masks.shape) == (0, *sample.get(shape))


def test_annotation_errors_name_the_file(depth_root, instance_root):
    depth = depth_root / "0_depth.png"
    Image.fromarray(np.ones((5, 5), np.uint16)).save(depth)
    with pytest.raises(ValueError, match=rf"its depth map '{depth}' is \(5, 5\)"):
        DepthDataset(depth_root, TRAIN_PIPELINE)[0]
    dataset = DepthDataset(depth_root, TRAIN_PIPELINE)
    dataset.load_annotations = lambda record: dict(depth=np.full((42, 30), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"depth map '.*1_depth.png' has negative or non-finite"):
        dataset[1]
    ann = instance_root / "0.json"
    ann.write_text(json.dumps([dict(label=1, bbox=[0, 0, 99, 4])]))
    with pytest.raises(ValueError, match=rf"annotation '{ann}' has boxes outside the 64x48 image"):
        InstanceDataset(instance_root, TRAIN_PIPELINE)[0]
    dataset = InstanceDataset(instance_root, TRAIN_PIPELINE)
    annotations = dataset.load_annotations(dataset.records[0])
    dataset.load_annotations = lambda record: annotations | dict(labels=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=rf"annotation '{ann}': boxes \(1, 4\), labels \(2,\)"):
        dataset[0]


def test_targets_are_checked_when_the_dataset_is_defined():
    class Unknown(BaseDenseDataset):
        targets = ("normals",)

    with pytest.raises(ValueError, match=r"Unknown.targets has unknown targets \['normals'\]"):
        Unknown([], pipeline=[], test_mode=False)
