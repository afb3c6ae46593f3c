"""Tiny datasets written in the exact on-disk layouts of ADE20K, Pascal VOC 2012 and Cityscapes."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dinoreg_dense.datasets import voc_colormap

# Raw ADE20K label maps (0 = unlabelled) of different sizes; the images are coloured by label.
ADE_TRAIN_LABELS = {
    "ADE_train_00000001": np.array([[0, 1], [150, 7]], np.uint8).repeat(10, 0).repeat(15, 1),
    "ADE_train_00000002": np.array([[3, 3, 0], [1, 2, 3]], np.uint8).repeat(12, 0).repeat(8, 1),
}
ADE_VAL_LABELS = {
    "ADE_val_00000001": np.array([[1, 2], [2, 1]], np.uint8).repeat(16, 0).repeat(20, 1),
}
# Pascal VOC train ids (255 = border); the SBD image is only in SegmentationClassAug.
VOC_LABELS = {
    "2007_000032": np.array([[0, 15], [255, 20]], np.uint8).repeat(9, 0).repeat(11, 1),
    "2007_000039": np.array([[1, 0, 0]], np.uint8).repeat(14, 0).repeat(7, 1),
    "2008_000003": np.array([[5, 0], [0, 5]], np.uint8).repeat(8, 0).repeat(8, 1),
}
VOC_SPLITS = {"train": ["2007_000032", "2007_000039"], "val": ["2008_000003"]}
SBD_ONLY = {"2011_003255": np.array([[0, 12]], np.uint8).repeat(10, 0).repeat(10, 1)}
# Cityscapes train ids per (split, city, frame).
CITYSCAPES_LABELS = {
    ("train", "aachen", "aachen_000000_000019"): np.array([[0, 1], [18, 255]], np.uint8),
    ("train", "bochum", "bochum_000000_000313"): np.array([[13, 13], [2, 10]], np.uint8),
    ("val", "frankfurt", "frankfurt_000000_000294"): np.array([[11, 0]], np.uint8),
}


def colour_of(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 image whose colour is a function of the label: large, JPEG-proof steps."""
    wide = labels.astype(np.int64)
    return np.stack([wide * 37 % 256, wide * 91 % 256, 255 - wide], axis=-1).astype(np.uint8)


def save_image(path: Path, labels: np.ndarray) -> None:
    """Write the (H, W, 3) image of an (H, W) label map, JPEG or PNG by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour_of(labels)).save(path, quality=100, subsampling=0)


def save_label(path: Path, labels: np.ndarray, palette: bool = False) -> None:
    """Write an (H, W) uint8 label map as a grayscale PNG, or a palette PNG (VOC style)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    label = Image.fromarray(labels, mode="L")
    if palette:
        label = label.convert("P")
        label.putpalette([c for colour in voc_colormap(256) for c in colour])
    label.save(path)


@pytest.fixture
def ade20k_root(tmp_path: Path) -> Path:
    """Folder containing ADEChallengeData2016 with 2 training and 1 validation image."""
    root = tmp_path / "ADEChallengeData2016"
    for split, labels in (("training", ADE_TRAIN_LABELS), ("validation", ADE_VAL_LABELS)):
        for stem, label in labels.items():
            save_image(root / "images" / split / f"{stem}.jpg", label)
            save_label(root / "annotations" / split / f"{stem}.png", label)
    return tmp_path


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """Folder containing VOCdevkit/VOC2012 with palette PNG labels and the SBD extras."""
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for stem, label in (VOC_LABELS | SBD_ONLY).items():
        save_image(root / "JPEGImages" / f"{stem}.jpg", label)
        if stem in VOC_LABELS:
            save_label(root / "SegmentationClass" / f"{stem}.png", label, palette=True)
        # SBD's SegmentationClassAug PNGs are grayscale and carry no 255 borders.
        save_label(root / "SegmentationClassAug" / f"{stem}.png", np.where(label == 255, 0, label))
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    for split, ids in VOC_SPLITS.items():
        (lists / f"{split}.txt").write_text("\n".join(ids) + "\n")
    # DeepLab's list format: image and label paths instead of bare ids.
    aug_ids = VOC_SPLITS["train"] + list(SBD_ONLY)
    (lists / "train_aug.txt").write_text(
        "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in aug_ids)
    )
    return tmp_path


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    """Cityscapes folder with leftImg8bit/ and gtFine/ labelTrainIds for 2 cities in train."""
    root = tmp_path / "cityscapes"
    for (split, city, frame), label in CITYSCAPES_LABELS.items():
        label = label.repeat(12, 0).repeat(12, 1)
        save_image(root / "leftImg8bit" / split / city / f"{frame}_leftImg8bit.png", label)
        gt_dir = root / "gtFine" / split / city
        save_label(gt_dir / f"{frame}_gtFine_labelTrainIds.png", label)
        save_label(gt_dir / f"{frame}_gtFine_labelIds.png", label)
    return root
