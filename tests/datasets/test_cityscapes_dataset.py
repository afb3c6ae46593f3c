import re

import pytest
import torch

from dinoreg_dense.datasets import CITYSCAPES_CLASSES, CityscapesDataset

from .conftest import CITYSCAPES_LABELS


def expected_gt(split: str, city: str, frame: str) -> torch.Tensor:
    return torch.from_numpy(
        CITYSCAPES_LABELS[split, city, frame].repeat(12, 0).repeat(12, 1)
    ).long()


def test_reads_city_folders_with_label_train_ids(cityscapes_root):
    dataset = CityscapesDataset(cityscapes_root, split="train")
    assert len(dataset) == 2
    for index, (city, frame) in enumerate(
        [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")]
    ):
        sample = dataset[index]["data_samples"]
        assert sample.img_path.endswith(f"leftImg8bit/train/{city}/{frame}_leftImg8bit.png")
        assert sample.seg_map_path.endswith(f"gtFine/train/{city}/{frame}_gtFine_labelTrainIds.png")
        assert torch.equal(sample.gt_sem_seg, expected_gt("train", city, frame))


def test_parent_folder_as_data_root(cityscapes_root):
    dataset = CityscapesDataset(cityscapes_root.parent, split="val")
    gt = dataset[0]["data_samples"].gt_sem_seg
    assert torch.equal(gt, expected_gt("val", "frankfurt", "frankfurt_000000_000294"))


def test_metainfo_has_the_official_colours(cityscapes_root):
    meta = CityscapesDataset(cityscapes_root).metainfo
    assert meta["classes"] == CITYSCAPES_CLASSES and len(CITYSCAPES_CLASSES) == 19
    colours = dict(zip(meta["classes"], meta["palette"], strict=True))
    assert colours["road"] == [128, 64, 128]
    assert colours["person"] == [220, 20, 60]
    assert colours["bicycle"] == [119, 11, 32]


def test_missing_label_train_ids_says_how_to_create_them(cityscapes_root):
    missing = cityscapes_root / "gtFine/train/bochum/bochum_000000_000313_gtFine_labelTrainIds.png"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))) as error:
        CityscapesDataset(cityscapes_root, split="train")
    assert "csCreateTrainIdLabelImgs" in str(error.value)
    assert "cityscapesscripts" in str(error.value)
