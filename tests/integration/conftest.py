"""A tiny toy experiment shared by the end-to-end tests."""

from pathlib import Path

import pytest
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from torch.optim import AdamW

from dinoreg_dense.datasets import make_toy_ade20k

REPO = Path(__file__).resolve().parents[2]

TINY_EXPERIMENT = """
_base_ = [{base!r}]
data_root = {data_root!r}
model = dict(
    backbone=dict(embed_dim=32, depth=2, num_heads=2),
)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=[dict(type="HorizontalFlip", p=0.5)]),
)
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root)
)
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=3e-3))
train_cfg = dict(max_iters={iters}, val_interval={val_interval})
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=5),
    dict(type="PolyLR", power=1.0, eta_min=0.0, by_epoch=False, begin=5, end={iters}),
]
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval={ckpt_interval}, max_keep_ckpts=10)
)
"""


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small toy ADE20K: 16 training and 8 validation images of 64 x 64."""
    root = tmp_path_factory.mktemp("toy")
    make_toy_ade20k(root, num_train=16, num_val=8, image_size=(64, 64))
    return root


def write_config(
    folder: Path, toy_root: Path, iters: int, val_interval: int, ckpt_interval: int
) -> Path:
    """A config file for the tiny experiment (patch 8, width 32, 2 blocks) on ``toy_root``."""
    path = folder / f"tiny_{iters}.py"
    path.write_text(
        TINY_EXPERIMENT.format(
            base=str(REPO / "configs" / "toy_linear_vittiny.py"),
            data_root=str(toy_root),
            iters=iters,
            val_interval=val_interval,
            ckpt_interval=ckpt_interval,
        )
    )
    return path


def shrink_mask2former(model_cfg) -> None:
    """The toy Mask2Former configs cut to what overfits a few 64 px images in seconds: a 2-block
    64-wide backbone and 32-channel neck, pixel decoder (one encoder layer) and decoder."""
    model_cfg.backbone.update(embed_dim=64, depth=2, num_heads=2, pos_embed_grid=8)
    head = model_cfg.decode_head
    head.neck.update(out_channels=32)
    head.pixel_decoder.update(conv_dim=32, mask_dim=32, num_encoder_layers=1, dim_feedforward=64)
    head.transformer_decoder.update(hidden_dim=32, num_queries=8, dim_feedforward=64)
    head.criterion.update(num_points=512)


def train_steps(model, items: list, steps: int) -> None:
    """``steps`` AdamW steps (lr 3e-3, no weight decay) on one batch of all ``items``."""
    wrapper = OptimWrapper(AdamW(model.parameters(), lr=3e-3, weight_decay=0.0, foreach=True))
    model.train()
    for _ in range(steps):
        model.train_step(pseudo_collate(items), wrapper)
