"""Every dense task runs on DINOv3 (patch 16, cls + 4 registers, RoPE, no position table) through
the same configs, models and runner as on DINOv2: the toy configs with their backbone swapped for
a tiny random DINOv3 (2 blocks of width 64) by a config override, a few iterations each, on toy
images whose sides are not multiples of 16. Object discovery and the artifact diagnostics on
DINOv3: tests/tools/test_discover.py and tests/tools/test_analyze_features.py."""

import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from dinoreg_dense.datasets import make_toy_ade20k, make_toy_nyu
from dinoreg_dense.datasets.toy_instances import make_toy_coco_instances
from dinoreg_dense.registry import RUNNERS

from .conftest import REPO

DINOV3 = dict(arch="vits16_dinov3", embed_dim=64, depth=2, num_heads=4, patch_size=16)
"""A tiny DINOv3: the preset's layout (RoPE, 4 registers, masked key bias) at width 64; the
toy configs' ``patch_size=8`` is overridden back to the preset's 16."""
IMAGE_SIZE = (72, 100)
"""(H, W) of the toy images: neither side a multiple of 16, so the backbone pads."""


def toy_runner(
    config: str,
    root: Path,
    work_dir: Path,
    iters: int,
    decode_head: dict | None = None,
    **overrides: object,
) -> Runner:
    """The runner of ``configs/<config>.py`` with the tiny DINOv3 backbone, ``root`` as data, no
    workers, ``iters`` training iterations and a checkpoint at the end; ``decode_head`` replaces
    the config's head, ``overrides`` are ``--cfg-options``-style dotted keys."""
    cfg = Config.fromfile(REPO / "configs" / f"{config}.py")
    cfg.merge_from_dict({"model.backbone": DINOV3, **overrides})
    if decode_head is not None:
        cfg.model.decode_head = decode_head
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].update(num_workers=0, persistent_workers=False)
        cfg[loader].dataset.data_root = str(root)
    cfg.train_cfg.update(max_iters=iters, val_interval=iters + 1)  # runner.test() evaluates
    cfg.default_hooks.checkpoint.interval = iters
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    runner = RUNNERS.build(cfg)
    backbone = runner.model.backbone
    assert backbone.patch_size == 16 and backbone.num_register_tokens == 4
    assert backbone.pos_embed is None and backbone.arch.pos_encoding == "rope"
    return runner


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> bool:
    """Whether any trainable parameter of ``module`` moved from ``before``."""
    return any(
        not torch.equal(before[name], p) for name, p in module.named_parameters() if p.requires_grad
    )


def test_linear_segmentation_trains_and_tests(tmp_path):
    root = tmp_path / "ade"
    make_toy_ade20k(root, num_train=4, num_val=2, image_size=IMAGE_SIZE)
    runner = toy_runner("toy_linear_vittiny", root, tmp_path / "work", iters=3)
    head = runner.model.decode_head
    before = {k: v.detach().clone() for k, v in head.named_parameters()}
    runner.train()
    assert changed(before, head)
    metrics = runner.test()
    assert 0 <= metrics["mIoU"] <= 100
    assert (tmp_path / "work" / "iter_3.pth").exists()


# lin.4 reads both blocks without the final norm (cls joined); DPT reads four maps, blocks
# (0, 1, 0, 1) of the 2-block backbone, with narrow fusion channels.
DEPTH_HEADS = {
    "linear4": {
        "model.backbone.out_indices": (0, 1),
        "model.backbone.norm_outputs": False,
        "model.decode_head.in_index": (0, 1),
    },
    "dpt": {
        "model.backbone.out_indices": (0, 1, 0, 1),
        "model.backbone.norm_outputs": False,
    },
}


@pytest.mark.parametrize("head", sorted(DEPTH_HEADS))
def test_depth_trains_and_tests(tmp_path, head):
    root = make_toy_nyu(tmp_path / "nyu", num_train=2, num_val=2, image_size=IMAGE_SIZE)
    dpt = Config.fromfile(REPO / "configs" / "_base_" / "models" / "depth_dpt_vits_reg.py")
    runner = toy_runner(
        "toy_depth_linear_vittiny",
        root,
        tmp_path / "work",
        iters=2,
        decode_head=dict(dpt.model.decode_head, channels=32) if head == "dpt" else None,
        **DEPTH_HEADS[head],
    )
    decode_head = runner.model.decode_head
    assert type(decode_head).__name__ == {"linear4": "LinearDepthHead", "dpt": "DPTHead"}[head]
    before = {k: v.detach().clone() for k, v in decode_head.named_parameters()}
    runner.train()
    assert changed(before, decode_head)
    metrics = runner.test()
    assert metrics["num_skipped"] == 0
    assert all(math.isfinite(metrics[key]) for key in ("abs_rel", "rmse", "d1"))


def test_mask2former_instances_train_and_test(tmp_path):
    root = make_toy_coco_instances(tmp_path / "coco", num_train=2, num_val=2, image_size=IMAGE_SIZE)
    runner = toy_runner("toy_instance_mask2former_vittiny", root, tmp_path / "work", iters=2)
    backbone = runner.model.backbone
    before = {k: v.detach().clone() for k, v in backbone.named_parameters()}
    runner.train()
    assert changed(before, backbone)  # the toy Mask2Former trains its backbone too
    metrics = runner.test()
    assert {"coco/bbox_AP", "coco/segm_AP"} <= metrics.keys()
