"""COCO20k from files in COCO's exact json format and LOST's list format: only listed images,
crowd boxes removed, x y w h -> x0 y0 x1 y1, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoreg_dense.datasets import make_toy_coco20k
from dinoreg_dense.datasets.coco20k import coco_boxes, read_image_list
from dinoreg_dense.registry import DATASETS


def build(root: Path, **kwargs):
    return DATASETS.build(dict(type="COCO20kDataset", data_root=str(root), **kwargs))


def write_coco(root: Path, images: list[dict], annotations: list[dict], listed: str) -> None:
    """instances_train2014.json (COCO's fields) + grey images + a list file."""
    (root / "train2014").mkdir(parents=True)
    (root / "annotations").mkdir()
    for image in images:
        pixels = np.full((image["height"], image["width"], 3), 100, np.uint8)
        Image.fromarray(pixels).save(root / "train2014" / image["file_name"])
    categories = [dict(id=1, name="person", supercategory="person"), dict(id=3, name="car")]
    content = dict(images=images, annotations=annotations, categories=categories)
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(content))
    (root / "coco_20k_filenames.txt").write_text(listed)


def annotation(id_: int, image_id: int, bbox: list[float], iscrowd: int = 0, category: int = 1):
    area = bbox[2] * bbox[3]
    return dict(id=id_, image_id=image_id, bbox=bbox, area=area, iscrowd=iscrowd,
                category_id=category, segmentation=[])  # fmt: skip


def test_listed_images_with_crowd_removed_and_boxes_converted(tmp_path):
    images = [
        dict(id=42, file_name="COCO_train2014_000000000042.jpg", width=30, height=20),
        dict(id=7, file_name="COCO_train2014_000000000007.jpg", width=16, height=24),
        dict(id=99, file_name="COCO_train2014_000000000099.jpg", width=8, height=8),  # unlisted
    ]
    annotations = [
        annotation(1, 42, [2.5, 3.0, 10.0, 4.25], category=3),
        annotation(2, 42, [0.0, 0.0, 30.0, 20.0], iscrowd=1),  # crowd: removed
        annotation(3, 42, [20.0, 10.0, 10.4, 10.0]),  # 0.4 px past the right border: clipped
        annotation(4, 7, [0.0, 0.0, 16.0, 24.0], iscrowd=1),  # image 7: only a crowd region
        annotation(5, 99, [1.0, 1.0, 2.0, 2.0]),
    ]
    listed = "train2014/COCO_train2014_000000000042.jpg\n\nCOCO_train2014_000000000007.jpg\n"
    write_coco(tmp_path, images, annotations, listed)
    dataset = build(tmp_path)
    assert len(dataset) == 2 and dataset.image_sizes == [(20, 30), (24, 16)]
    first = dataset[0]["data_samples"]
    assert first.metainfo["image_id"] == 42 and dataset[0]["inputs"].shape == (3, 20, 30)
    np.testing.assert_allclose(
        first.gt_instances.bboxes.numpy(), [[2.5, 3.0, 12.5, 7.25], [20.0, 10.0, 30.0, 20.0]]
    )
    assert dataset.metainfo["classes"] == ("person", "car")
    assert first.gt_instances.labels.tolist() == [1, 0]  # car, person: sorted category ids
    assert dataset[1]["data_samples"].gt_instances.bboxes.shape == (0, 4)


def test_image_list_formats(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(
        "9\ntrain2014/COCO_train2014_000000000018.jpg\n\nCOCO_train2014_000000000009.jpg\n"
    )
    assert read_image_list(path) == [9, 18]
    path.write_text("train2014/COCO_train2014_x.jpg\n")
    with pytest.raises(ValueError, match="line 1"):
        read_image_list(path)
    path.write_text("\n")
    with pytest.raises(ValueError, match="no images"):
        read_image_list(path)


def test_coco_boxes_drop_boxes_empty_after_clipping():
    boxes, categories, empty = coco_boxes(
        [annotation(1, 1, [12.0, 0.0, 3.0, 3.0]), annotation(2, 1, [1.0, 1.0, 2.0, 0.0])], 10, 10
    )
    assert boxes.shape == (0, 4) and categories.shape == (0,) and empty == 2


def test_toy_coco20k(tmp_path):
    make_toy_coco20k(tmp_path, num_images=4, image_size=(32, 48))
    dataset = build(tmp_path)
    assert len(dataset) == 3  # the last image is not listed
    content = json.loads((tmp_path / "annotations" / "instances_train2014.json").read_text())
    for index in range(3):
        sample = dataset[index]["data_samples"]
        image_id = sample.metainfo["image_id"]
        expected = [
            [x, y, x + w, y + h]
            for a in content["annotations"]
            if a["image_id"] == image_id and not a["iscrowd"]
            for x, y, w, h in [a["bbox"]]
        ]
        np.testing.assert_allclose(sample.gt_instances.bboxes.numpy(), expected)


@pytest.mark.parametrize(
    ("break_it", "match"),
    [
        (lambda r: (r / "annotations" / "instances_train2014.json").unlink(), "instances_train"),
        (lambda r: (r / "coco_20k_filenames.txt").unlink(), "coco_20k_filenames.txt"),
        (lambda r: (r / "train2014" / "COCO_train2014_000000000009.jpg").unlink(), "000009.jpg"),
        (lambda r: (r / "coco_20k_filenames.txt").write_text("12345\n"), "not in"),
    ],
)
def test_missing_files_are_named(tmp_path, break_it, match):
    make_toy_coco20k(tmp_path, num_images=2, image_size=(16, 16))
    break_it(tmp_path)
    with pytest.raises(FileNotFoundError, match=match):
        build(tmp_path)
