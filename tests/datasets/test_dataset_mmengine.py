"""The datasets as the Runner uses them: built from config dicts, batched by pseudo_collate."""

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from torch.utils.data import DataLoader

from dinoreg_dense.datasets import TOY_CLASSES, make_toy_ade20k
from dinoreg_dense.registry import DATASETS
from dinoreg_dense.structures import SegDataSample

TRAIN_PIPELINE = [
    dict(type="RandomResize", scale=(128, 32), ratio_range=(0.5, 2.0)),
    dict(type="RandomCropCatMax", height=24, width=24, cat_max_ratio=0.75),
    dict(type="HorizontalFlip", p=0.5),
    dict(type="PhotoMetricDistortion"),
]


@pytest.mark.parametrize(
    ("dataset_type", "root_fixture", "num_classes"),
    [
        ("ADE20KDataset", "ade20k_root", 150),
        ("VOCDataset", "voc_root", 21),
        ("CityscapesDataset", "cityscapes_root", 19),
    ],
)
def test_build_from_config_and_collate(dataset_type, root_fixture, num_classes, request):
    cfg = dict(type=dataset_type, data_root=request.getfixturevalue(root_fixture))
    dataset = DATASETS.build(cfg | dict(pipeline=TRAIN_PIPELINE))
    assert type(dataset).__name__ == dataset_type
    assert len(dataset.metainfo["classes"]) == len(dataset.metainfo["palette"]) == num_classes
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=pseudo_collate)))
    assert set(batch) == {"inputs", "data_samples"}
    assert len(batch["inputs"]) == len(batch["data_samples"]) == 2
    for inputs, sample in zip(batch["inputs"], batch["data_samples"], strict=True):
        assert isinstance(inputs, torch.Tensor) and inputs.dtype == torch.uint8
        assert isinstance(sample, SegDataSample)
        assert sample.gt_sem_seg.dtype == torch.int64
        assert tuple(inputs.shape) == (3, *sample.img_shape) == (3, *sample.gt_sem_seg.shape)
        assert max(sample.img_shape) <= 24
        labels = set(sample.gt_sem_seg.unique().tolist()) - {255}
        assert all(0 <= label < num_classes for label in labels)
        assert isinstance(sample.flip, bool)


def test_test_mode_batches_keep_ground_truth_at_original_size(ade20k_root):
    cfg = dict(
        type="ADE20KDataset",
        data_root=ade20k_root,
        split="training",
        test_mode=True,
        pipeline=[dict(type="ResizeToScale", scale=(256, 64), keep_ratio=True)],
    )
    batch = pseudo_collate([DATASETS.build(cfg)[i] for i in range(2)])
    for inputs, sample in zip(batch["inputs"], batch["data_samples"], strict=True):
        assert min(inputs.shape[-2:]) == 64
        assert tuple(sample.gt_sem_seg.shape) == sample.ori_shape != sample.img_shape


def augmented_shapes(dataset, num_workers: int) -> list[tuple[int, int]]:
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=pseudo_collate)
    return [batch["data_samples"][0].img_shape for batch in loader]


def test_workers_draw_different_augmentations_reproducibly(tmp_path):
    # All images are 64x64, so the output size shows the ratio RandomResize drew. Worker 0 loads
    # items 0, 2, 4 and worker 1 items 1, 3, 5: forked copies of one generator would agree.
    make_toy_ade20k(tmp_path, num_train=6, num_val=0, image_size=(64, 64))
    pipeline = [dict(type="RandomResize", scale=(256, 64), ratio_range=(0.5, 2.0))]
    dataset = DATASETS.build(
        dict(type="ADE20KDataset", data_root=tmp_path, pipeline=pipeline, classes=TOY_CLASSES)
    )
    torch.manual_seed(1)
    shapes = augmented_shapes(dataset, num_workers=2)
    assert shapes[0::2] != shapes[1::2]
    torch.manual_seed(1)
    assert augmented_shapes(dataset, num_workers=2) == shapes


def test_in_process_augmentations_ignore_other_uses_of_torch_rng(tmp_path):
    # A resumed run replays the skipped iterations but not the validation passes in between, so
    # the training stream must not depend on other draws from torch's global generator.
    make_toy_ade20k(tmp_path, num_train=6, num_val=0, image_size=(64, 64))
    cfg = dict(
        type="ADE20KDataset",
        data_root=tmp_path,
        pipeline=[dict(type="RandomResize", scale=(256, 64), ratio_range=(0.5, 2.0))],
        classes=TOY_CLASSES,
    )
    torch.manual_seed(1)
    dataset = DATASETS.build(cfg)
    first = augmented_shapes(dataset, num_workers=0)
    continued = augmented_shapes(dataset, num_workers=0)
    torch.manual_seed(1)
    replay = DATASETS.build(cfg)
    assert augmented_shapes(replay, num_workers=0) == first
    torch.rand(1000)  # e.g. a validation pass
    assert augmented_shapes(replay, num_workers=0) == continued
    assert len(set(first + continued)) > 1


def test_runner_builds_through_the_root_registry(ade20k_root):
    # The Runner calls MMEngine's root DATASETS; default_scope="dinoreg_dense" routes it to ours.
    dataset = MMENGINE_DATASETS.build(dict(type="ADE20KDataset", data_root=ade20k_root))
    assert type(dataset).__module__ == "dinoreg_dense.datasets.ade20k"
