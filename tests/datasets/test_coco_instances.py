"""COCOInstanceDataset on a hand-written COCO json, the toy generator and the LSJ config piece.

The json holds every segmentation COCO uses: polygons, a compressed RLE object, a compressed RLE
crowd and an uncompressed RLE crowd (COCO's crowd format), with category ids that are not
contiguous, so labels and ids can be told apart.
"""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from dinoreg_dense.datasets import COCOInstanceDataset, make_toy_coco_instances
from dinoreg_dense.datasets.coco_instances import masks_to_boxes
from dinoreg_dense.datasets.toy_instances import TOY_CATEGORY_IDS, uncompressed_rle
from dinoreg_dense.registry import DATASETS

HEIGHT, WIDTH = 20, 30
LSJ_PIECE = Path(__file__).parents[2] / "configs" / "_base_" / "datasets" / "coco_instance.py"


def box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """(HEIGHT, WIDTH) bool, True on pixel columns x0..x1-1 and rows y0..y1-1."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=rle["size"], counts=rle["counts"].decode("ascii"))


# Polygon of pixels x 2..11, y 3..8 (a rectangle); RLE object x 20..27, y 10..17.
POLYGON = [2.0, 3.0, 12.0, 3.0, 12.0, 9.0, 2.0, 9.0]
RLE_OBJECT = box_mask(20, 10, 28, 18)
CROWD_COMPRESSED = box_mask(0, 14, 6, 20)
CROWD_UNCOMPRESSED = box_mask(14, 0, 18, 4)


def write_tiny_coco(root: Path) -> Path:
    """Image 1: a polygon (category 7), an RLE object (category 3) and two crowds; image 2: only
    a crowd. Returns the json's path."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    rng = np.random.default_rng(0)
    for name in ("000000000001.jpg", "000000000002.jpg"):
        pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "val2017" / name)
    images = [dict(id=i, file_name=f"{i:012d}.jpg", height=HEIGHT, width=WIDTH) for i in (1, 2)]

    def annotation(i, image_id, category, segmentation, bbox, crowd):
        return dict(
            id=i,
            image_id=image_id,
            category_id=category,
            segmentation=segmentation,
            bbox=bbox,
            area=float(np.prod(bbox[2:])),
            iscrowd=crowd,
        )

    annotations = [
        annotation(1, 1, 7, [POLYGON], [2.0, 3.0, 10.0, 6.0], 0),
        annotation(2, 1, 3, compressed_rle(RLE_OBJECT), [20.0, 10.0, 8.0, 8.0], 0),
        annotation(3, 1, 3, compressed_rle(CROWD_COMPRESSED), [0.0, 14.0, 6.0, 6.0], 1),
        annotation(4, 1, 7, uncompressed_rle(CROWD_UNCOMPRESSED), [14.0, 0.0, 4.0, 4.0], 1),
        annotation(5, 2, 3, uncompressed_rle(box_mask(1, 1, 5, 5)), [1.0, 1.0, 4.0, 4.0], 1),
    ]
    categories = [dict(id=7, name="seven"), dict(id=3, name="three")]
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return path


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    write_tiny_coco(tmp_path)
    return tmp_path


def test_loader_decodes_polygons_and_rle_and_maps_categories(tiny_root):
    dataset = DATASETS.build(
        dict(type="COCOInstanceDataset", data_root=str(tiny_root), split="val", test_mode=True)
    )
    assert len(dataset) == 2  # test mode keeps the crowd-only image
    assert dataset.metainfo["classes"] == ("three", "seven")
    assert dataset.metainfo["category_ids"] == (3, 7)
    assert Path(dataset.metainfo["ann_file"]).is_file()
    sample = dataset[0]["data_samples"]
    assert sample.image_id == 1
    instances = sample.gt_instances
    assert instances.labels.tolist() == [1, 0]  # category 7 -> label 1, category 3 -> label 0
    expected_boxes = torch.tensor([[2.0, 3.0, 12.0, 9.0], [20.0, 10.0, 28.0, 18.0]])
    torch.testing.assert_close(instances.bboxes, expected_boxes)
    assert instances.masks.dtype == torch.bool
    # pycocotools rasterises the polygon's edges at x = 12 and y = 9 exclusive
    assert torch.equal(instances.masks[0], torch.from_numpy(box_mask(2, 3, 12, 9)))
    assert torch.equal(instances.masks[1], torch.from_numpy(RLE_OBJECT))
    # crowds are no targets; both RLE kinds decode to their regions
    np.testing.assert_array_equal(dataset.crowd_mask(0), CROWD_COMPRESSED | CROWD_UNCOMPRESSED)
    assert len(dataset[1]["data_samples"].gt_instances) == 0


def test_training_skips_images_without_objects(tiny_root):
    dataset = COCOInstanceDataset(tiny_root, split="val")
    assert [record["image_id"] for record in dataset.records] == [1]
    kept = COCOInstanceDataset(tiny_root, split="val", filter_empty=False)
    assert len(kept) == 2


def test_flip_and_crop_keep_masks_and_boxes_aligned(tiny_root):
    crop = dict(type="Crop", x_min=5, y_min=2, x_max=25, y_max=16)  # cuts both objects
    dataset = COCOInstanceDataset(
        tiny_root, split="val", pipeline=[dict(type="HorizontalFlip", p=1.0), crop]
    )
    instances = dataset[0]["data_samples"].gt_instances
    flipped = [np.fliplr(box_mask(2, 3, 12, 9)), np.fliplr(RLE_OBJECT)]
    expected = np.stack([mask[2:16, 5:25] for mask in flipped])
    np.testing.assert_array_equal(instances.masks.numpy(), expected)
    # by hand: x -> 30 - x, minus the crop's corner (5, 2), clipped to its 20 x 14
    torch.testing.assert_close(
        instances.bboxes, torch.tensor([[13.0, 1.0, 20.0, 7.0], [0.0, 8.0, 5.0, 14.0]])
    )
    torch.testing.assert_close(instances.bboxes, torch.from_numpy(masks_to_boxes(expected)))


def test_instance_cropped_away_is_dropped(tiny_root):
    crop = dict(type="Crop", x_min=0, y_min=0, x_max=14, y_max=10)  # the polygon only
    dataset = COCOInstanceDataset(tiny_root, split="val", pipeline=[crop])
    instances = dataset[0]["data_samples"].gt_instances
    assert instances.labels.tolist() == [1]
    assert tuple(instances.masks.shape) == (1, 10, 14)


def test_missing_files_are_named(tmp_path, tiny_root):
    with pytest.raises(FileNotFoundError, match="instances_train2017.json"):
        COCOInstanceDataset(tiny_root, split="train")
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere"):
        COCOInstanceDataset(tiny_root, split="val", img_dir="nowhere")
    (tiny_root / "val2017" / "000000000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000000000001.jpg"):
        COCOInstanceDataset(tiny_root, split="val", test_mode=True)


def test_uncompressed_rle_round_trips():
    rng = np.random.default_rng(1)
    for mask in (rng.random((7, 5)) > 0.5, np.ones((3, 4), bool), np.zeros((2, 2), bool)):
        rle = mask_util.frPyObjects(uncompressed_rle(mask), *mask.shape)
        np.testing.assert_array_equal(mask_util.decode(rle).astype(bool), mask)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory) -> Path:
    return make_toy_coco_instances(tmp_path_factory.mktemp("toy_coco"), num_train=8, num_val=4)


def test_toy_json_is_official_coco_and_loads(toy_root):
    for split, count in (("train", 8), ("val", 4)):
        path = toy_root / "annotations" / f"instances_{split}2017.json"
        raw = json.loads(path.read_text())
        assert set(raw) == {"info", "licenses", "images", "annotations", "categories"}
        assert len(raw["images"]) == count
        coco = COCO(str(path))
        assert sorted(coco.cats) == list(TOY_CATEGORY_IDS)
        crowds = [a for a in raw["annotations"] if a["iscrowd"]]
        assert crowds and all(isinstance(a["segmentation"]["counts"], list) for a in crowds)
        for annotation in raw["annotations"]:
            assert set(annotation) == {
                "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd"
            }  # fmt: skip
            if not annotation["iscrowd"]:
                assert isinstance(annotation["segmentation"], list)
            mask = coco.annToMask(annotation)
            assert mask.sum() == annotation["area"] > 0
            x0, y0 = np.nonzero(mask.any(0))[0][0], np.nonzero(mask.any(1))[0][0]
            assert annotation["bbox"][:2] == [float(x0), float(y0)]
    train = COCOInstanceDataset(toy_root, split="train")
    assert len(train) == 6  # images 4 and 8 hold only a crowd
    val = COCOInstanceDataset(toy_root, split="val", test_mode=True)
    assert len(val) == 4
    labels = torch.cat([train[i]["data_samples"].gt_instances.labels for i in range(len(train))])
    assert set(labels.tolist()) == {0, 1, 2}


def test_lsj_piece_builds_on_toy_data(toy_root):
    cfg = Config.fromfile(LSJ_PIECE)
    dataset_cfg = dict(cfg.train_dataloader.dataset, data_root=str(toy_root))
    dataset = DATASETS.build(dataset_cfg)
    for index in range(len(dataset)):
        sample = dataset[index]["data_samples"]
        assert max(sample.img_shape) <= cfg.crop_size[0]
        instances = sample.gt_instances
        assert instances.masks.flatten(1).any(1).all()
        torch.testing.assert_close(
            instances.bboxes, torch.from_numpy(masks_to_boxes(instances.masks.numpy()))
        )
    val = DATASETS.build(dict(cfg.val_dataloader.dataset, data_root=str(toy_root)))
    assert max(val[0]["data_samples"].img_shape) == cfg.crop_size[0]


def test_make_toy_dataset_tool_writes_coco_instances(tmp_path, monkeypatch, capsys):
    tool = runpy.run_path(str(Path(__file__).parents[2] / "tools" / "make_toy_dataset.py"))
    argv = ["make_toy_dataset.py", str(tmp_path), "--layout", "coco-instances", "--num-train", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--num-val", "1"])
    tool["main"]()
    assert "COCOInstanceDataset" in capsys.readouterr().out
    assert len(COCOInstanceDataset(tmp_path, split="val", test_mode=True)) == 1
