import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.datasets import VOC_CLASSES, VOCDataset

from .conftest import SBD_ONLY, VOC_LABELS, VOC_SPLITS


def test_palette_png_indices_are_the_labels(voc_root):
    label_path = voc_root / "VOCdevkit/VOC2012/SegmentationClass/2007_000032.png"
    with Image.open(label_path) as label:
        assert label.mode == "P"
    dataset = VOCDataset(voc_root, split="train")
    assert len(dataset) == 2
    sample = dataset[0]["data_samples"]
    assert sample.seg_map_path == str(label_path)
    # No reduce-zero-label: 0 is background, 255 (border) stays ignored.
    assert torch.equal(sample.gt_sem_seg, torch.from_numpy(VOC_LABELS["2007_000032"]).long())
    assert sample.img_path.endswith("VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg")


@pytest.mark.parametrize("subfolder", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_val_split_from_any_data_root(voc_root, subfolder):
    dataset = VOCDataset(voc_root / subfolder, split="val")
    assert [p[0].stem for p in dataset.pairs] == VOC_SPLITS["val"]
    gt = dataset[0]["data_samples"].gt_sem_seg
    assert torch.equal(gt, torch.from_numpy(VOC_LABELS["2008_000003"]).long())


def test_sbd_aug_uses_train_aug_list_and_segmentation_class_aug(voc_root):
    dataset = VOCDataset(voc_root, split="train", use_sbd_aug=True)
    stems = [image.stem for image, _ in dataset.pairs]
    assert stems == VOC_SPLITS["train"] + list(SBD_ONLY)
    assert all(label.parent.name == "SegmentationClassAug" for _, label in dataset.pairs)
    gt = dataset[2]["data_samples"].gt_sem_seg
    assert torch.equal(gt, torch.from_numpy(SBD_ONLY["2011_003255"]).long())


def test_sbd_aug_is_for_the_train_split_only(voc_root):
    with pytest.raises(ValueError, match="use_sbd_aug"):
        VOCDataset(voc_root, split="val", use_sbd_aug=True)


def test_missing_sbd_list_mentions_mmseg_name(voc_root):
    lists = voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation"
    (lists / "train_aug.txt").rename(lists / "trainaug.txt")
    with pytest.raises(FileNotFoundError, match="train_aug.txt.*(\n.*)*trainaug.txt"):
        VOCDataset(voc_root, use_sbd_aug=True)


def test_metainfo_classes_and_voc_colormap(voc_root):
    meta = VOCDataset(voc_root).metainfo
    assert meta["classes"] == VOC_CLASSES and len(VOC_CLASSES) == 21
    assert meta["classes"][15] == "person"
    # The official VOC colours: background black, aeroplane dark red, person pink, tv (0,64,128).
    palette = np.array(meta["palette"])
    assert palette[[0, 1, 15, 20]].tolist() == [
        [0, 0, 0],
        [128, 0, 0],
        [192, 128, 128],
        [0, 64, 128],
    ]
