"""Shared test fixtures: tiny models so the suite runs on 2 CPU cores."""

import pytest
import torch
from mmengine.registry import init_default_scope

TINY_BACKBONE = dict(
    type="RegisterViT",
    arch="vits14_reg4",
    embed_dim=32,
    depth=2,
    num_heads=2,
    pos_embed_grid=8,
)


@pytest.fixture(autouse=True)
def _seed_threads_scope() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    # What a config's default_scope does inside a Runner: MMEngine builders find our modules.
    init_default_scope("dinoreg_dense")


@pytest.fixture
def tiny_backbone_cfg() -> dict:
    """Config of a 2-block, 32-wide ViT with 4 registers and patch 14."""
    return dict(TINY_BACKBONE)
