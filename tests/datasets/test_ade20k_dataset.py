import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.datasets import ADE20K_CLASSES, ADE20KDataset
from dinoreg_dense.structures import SegDataSample

from .conftest import ADE_TRAIN_LABELS, ADE_VAL_LABELS, colour_of


def reduce_zero_label(raw: np.ndarray) -> torch.Tensor:
    """Hand-written reference: 0 -> 255, k -> k - 1."""
    return torch.from_numpy(np.where(raw == 0, 255, raw.astype(np.int64) - 1))


def test_item_contract_and_reduce_zero_label(ade20k_root):
    dataset = ADE20KDataset(ade20k_root, split="training")
    assert len(dataset) == 2
    item = dataset[0]
    raw = ADE_TRAIN_LABELS["ADE_train_00000001"]
    inputs, sample = item["inputs"], item["data_samples"]
    assert isinstance(sample, SegDataSample)
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, *raw.shape)
    assert sample.gt_sem_seg.dtype == torch.int64
    assert torch.equal(sample.gt_sem_seg, reduce_zero_label(raw))
    assert set(sample.gt_sem_seg.unique().tolist()) == {255, 0, 149, 6}
    # RGB channel order: the image's colour at each pixel is colour_of(raw label).
    expected = torch.from_numpy(colour_of(raw)).permute(2, 0, 1).int()
    assert (inputs.int() - expected).abs().max() <= 8
    assert sample.img_path.endswith("ADEChallengeData2016/images/training/ADE_train_00000001.jpg")
    assert sample.seg_map_path.endswith(
        "ADEChallengeData2016/annotations/training/ADE_train_00000001.png"
    )
    assert sample.ori_shape == sample.img_shape == raw.shape
    assert sample.flip is False


@pytest.mark.parametrize("subfolder", ["", "ADEChallengeData2016"])
def test_data_root_is_the_parent_or_the_dataset_folder(ade20k_root, subfolder):
    dataset = ADE20KDataset(ade20k_root / subfolder, split="validation")
    assert len(dataset) == len(ADE_VAL_LABELS)


def test_metainfo_has_150_classes_and_distinct_non_black_colours(ade20k_root):
    meta = ADE20KDataset(ade20k_root).metainfo
    assert meta["classes"] == ADE20K_CLASSES and len(ADE20K_CLASSES) == 150
    assert meta["classes"][:3] == ("wall", "building", "sky") and meta["classes"][-1] == "flag"
    palette = meta["palette"]
    assert len(palette) == 150 and len({tuple(c) for c in palette}) == 150
    assert [0, 0, 0] not in palette


def test_classes_override(ade20k_root):
    dataset = ADE20KDataset(ade20k_root, split="validation", classes=("thing", "stuff"))
    assert dataset.metainfo["classes"] == ("thing", "stuff")
    assert len(dataset.metainfo["palette"]) == 2
    gt = dataset[0]["data_samples"].gt_sem_seg
    assert torch.equal(gt, reduce_zero_label(ADE_VAL_LABELS["ADE_val_00000001"]))


def test_training_pipeline_moves_image_and_label_together(ade20k_root):
    plain = ADE20KDataset(ade20k_root)[1]
    flipped = ADE20KDataset(ade20k_root, pipeline=[dict(type="HorizontalFlip", p=1.0)])[1]
    assert flipped["data_samples"].flip is True
    assert torch.equal(flipped["inputs"], plain["inputs"].flip(-1))
    assert torch.equal(
        flipped["data_samples"].gt_sem_seg, plain["data_samples"].gt_sem_seg.flip(-1)
    )


def test_test_mode_transforms_the_image_only(ade20k_root):
    raw = ADE_VAL_LABELS["ADE_val_00000001"]  # 32 x 40
    pipeline = [dict(type="ResizeToScale", scale=(64, 16), keep_ratio=True)]
    item = ADE20KDataset(ade20k_root, "validation", pipeline=pipeline, test_mode=True)[0]
    sample = item["data_samples"]
    # factor = min(64 / 40, 16 / 32) = 0.5
    assert item["inputs"].shape == (3, 16, 20)
    assert sample.img_shape == (16, 20)
    assert sample.ori_shape == raw.shape == tuple(sample.gt_sem_seg.shape)
    assert torch.equal(sample.gt_sem_seg, reduce_zero_label(raw))


def test_training_mode_resizes_the_label_with_the_image(ade20k_root):
    pipeline = [dict(type="ResizeToScale", scale=(64, 16), keep_ratio=True)]
    sample = ADE20KDataset(ade20k_root, "validation", pipeline=pipeline)[0]["data_samples"]
    assert sample.img_shape == tuple(sample.gt_sem_seg.shape) == (16, 20)
    assert sample.ori_shape == (32, 40)


def test_raw_255_stays_ignored(ade20k_root):
    label_path = ade20k_root / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"
    raw = np.array(ADE_VAL_LABELS["ADE_val_00000001"])
    raw[:4] = 255
    Image.fromarray(raw).save(label_path)
    gt = ADE20KDataset(ade20k_root, split="validation")[0]["data_samples"].gt_sem_seg
    assert torch.equal(gt, reduce_zero_label(raw).masked_fill(torch.from_numpy(raw == 255), 255))
    assert (gt[:4] == 255).all()
