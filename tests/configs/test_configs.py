"""Every experiment config builds, and its model runs a forward/backward at a small size."""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from dinoreg_dense.datasets import build_pipeline
from dinoreg_dense.registry import MODELS
from tests.models.test_segmentor import make_batch

CONFIGS = sorted(p for p in (Path(__file__).parents[2] / "configs").glob("*.py"))
SEGMENTATION = [p for p in CONFIGS if Config.fromfile(p).model.type == "Segmentor"]
DEPTH = [p for p in CONFIGS if Config.fromfile(p).model.type == "Depther"]


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"ade20k_linear_vits_reg", "ade20k_ms_vits_reg", "voc2012_linear_vits_reg"} <= names
    assert len(SEGMENTATION) + len(DEPTH) == len(CONFIGS) and DEPTH


@pytest.mark.parametrize("path", SEGMENTATION, ids=lambda p: p.stem)
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    model_cfg = cfg.model
    num_maps = len(model_cfg.decode_head.in_index)
    # shrink the backbone, keep everything else (arch family, registers, head, test_cfg)
    model_cfg.backbone.update(embed_dim=32, depth=4, num_heads=2)
    model_cfg.test_cfg.update(crop_size=(28, 42), stride=(14, 28), scales=(1.0,))
    model = MODELS.build(model_cfg)
    assert model.decode_head.in_channels == 32 * num_maps  # derived from the backbone
    # one home for the crop: the dataset's crop_size, passed to the model once
    crops = [t for t in cfg.train_dataloader.dataset.pipeline if t["type"] == "RandomCropCatMax"]
    assert [(t["height"], t["width"]) for t in crops] == [tuple(cfg.crop_size)]
    assert tuple(model_cfg.data_preprocessor.size) == tuple(cfg.crop_size)
    if model_cfg.test_cfg.get("mode") == "slide":  # windows of the training crop's size
        assert "crop_size" not in Config.fromfile(path).model.test_cfg

    model.train()
    num_classes = model.num_classes
    data = model.data_preprocessor(make_batch([(40, 50), (36, 44)], num_classes), training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert model.decode_head.conv_seg.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        out = model.test_step(make_batch([(40, 50)], num_classes, with_gt=False))
    assert out[0].pred_sem_seg.shape == (40, 50)

    for loader in ("train_dataloader", "val_dataloader"):
        build_pipeline(cfg[loader].dataset.pipeline)  # transform names and arguments are valid


@pytest.mark.parametrize("path", DEPTH, ids=lambda p: p.stem)
def test_depth_config_builds_and_trains_one_step(path):
    from dinoreg_dense.structures import DenseDataSample

    cfg = Config.fromfile(path)
    cfg.model.backbone.update(embed_dim=32, depth=2, num_heads=2)
    model = MODELS.build(cfg.model).train()
    # derived head width: 32 per map, doubled by the cls token joined to every patch
    assert model.decode_head.in_channels == 64 * len(cfg.model.decode_head.in_index)
    images = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8) for _ in range(2)]
    samples = [DenseDataSample(gt_depth_map=torch.full((40, 50), 3.0)) for _ in range(2)]
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples), training=True)
    losses = model(**data, mode="loss")
    sum(losses.values()).backward()
    assert model.decode_head.conv_depth.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=images[:1], data_samples=None))
    depth = out[0].pred_depth_map
    head = model.decode_head
    assert depth.shape == (40, 50)
    assert head.min_depth <= depth.min() <= depth.max() <= head.max_depth
    for loader in ("train_dataloader", "val_dataloader"):
        build_pipeline(cfg[loader].dataset.pipeline)
