"""SimpleFeaturePyramid: level sizes and strides for patch sizes 8 / 14 / 16 on non-square inputs,
ViTDet's layout, one layer per level, gradients, and building from a dict."""

import pytest
import torch
import torch.nn.functional as F

from dinoreg_dense.backbones import ViTFeatures
from dinoreg_dense.heads import LayerNorm2d, SimpleFeaturePyramid
from dinoreg_dense.registry import MODELS


def build_backbone(patch_size: int) -> torch.nn.Module:
    """A 4-block, 32-wide ViT with registers returning all four blocks."""
    return MODELS.build(
        dict(
            type="RegisterViT",
            arch="vits14_reg4",
            embed_dim=32,
            depth=4,
            num_heads=2,
            pos_embed_grid=4,
            patch_size=patch_size,
            out_indices=(0, 1, 2, 3),
        )
    )


def fake_features(maps: list[torch.Tensor], patch_size: int = 16) -> ViTFeatures:
    return ViTFeatures(
        patch_maps=maps,
        cls_tokens=None,
        register_tokens=[],
        indices=list(range(len(maps))),
        patch_size=patch_size,
        padding=(0, 0),
    )


@pytest.mark.parametrize("patch_size", [8, 14, 16])
@pytest.mark.parametrize("height, width", [(4, 6), (5, 3)])  # in patches; even and odd grids
def test_levels_are_p_over_4_to_2p_from_the_backbone(patch_size, height, width):
    backbone = build_backbone(patch_size).eval()
    neck = MODELS.build(dict(type="SimpleFeaturePyramid", in_channels=32, out_channels=8))
    with torch.no_grad():
        levels = neck(backbone(torch.randn(2, 3, height * patch_size, width * patch_size)))
    half = ((height + 1) // 2, (width + 1) // 2)  # the max-pool keeps an odd last row / column
    sizes = [(4 * height, 4 * width), (2 * height, 2 * width), (height, width), half]
    assert [tuple(level.shape) for level in levels] == [(2, 8, *size) for size in sizes]
    assert neck.strides(patch_size) == [patch_size / 4, patch_size / 2, patch_size, 2 * patch_size]


def test_patch_14_strides_are_documented_non_integers():
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=8)
    assert neck.strides(14) == [3.5, 7.0, 14.0, 28.0]


def test_other_powers_of_two_give_exact_strides_4_to_32_for_patch_8():
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=8, scale_factors=(2, 1, 0.5, 0.25))
    levels = neck(fake_features([torch.randn(1, 32, 8, 12)], patch_size=8))
    assert [level.shape[-2:] for level in levels] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert neck.strides(8) == [4.0, 8.0, 16.0, 32.0]


def test_vitdet_layout():
    # x4: ConvT(D, D/2) LN GELU ConvT(D/2, D/4); x2: ConvT(D, D/2); x1: nothing; x0.5: max-pool.
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=8)
    up4, up2, same, down2 = neck.resamples
    assert [type(m) for m in up4] == [
        torch.nn.ConvTranspose2d,
        LayerNorm2d,
        torch.nn.GELU,
        torch.nn.ConvTranspose2d,
    ]
    assert (up4[0].in_channels, up4[0].out_channels, up4[3].out_channels) == (32, 16, 8)
    assert up4[0].kernel_size == up4[0].stride == (2, 2)
    assert [m.out_channels for m in up2] == [16]
    assert isinstance(same, torch.nn.Identity)
    assert isinstance(down2, torch.nn.MaxPool2d)
    assert [conv[0].in_channels for conv in neck.lateral_convs] == [8, 16, 32, 32]
    assert [conv[0].kernel_size for conv in neck.output_convs] == [(3, 3)] * 4


def test_layer_norm_2d_normalises_the_channels_of_each_position():
    x = torch.randn(2, 6, 3, 5)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_()
        norm.bias.uniform_()
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    expected = (x - mean) / (var + norm.eps).sqrt() * norm.weight[:, None, None]
    torch.testing.assert_close(norm(x), expected + norm.bias[:, None, None])


def test_one_layer_per_level():
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=8, in_index=(0, 1, 2, 3))
    maps = [torch.randn(1, 32, 4, 6) for _ in range(4)]
    levels = neck(fake_features(maps))
    # Level l depends on map l only: changing map 2 changes level 2 alone.
    changed = list(maps)
    changed[2] = torch.randn(1, 32, 4, 6)
    again = neck(fake_features(changed))
    assert [not torch.equal(a, b) for a, b in zip(levels, again, strict=True)] == [
        False,
        False,
        True,
        False,
    ]
    # A single index feeds every level from that map (ViTDet: the last one).
    last = SimpleFeaturePyramid(in_channels=32, out_channels=8, in_index=-1)
    last.load_state_dict(neck.state_dict())
    for a, b in zip(last(fake_features(maps)), neck(fake_features([maps[3]] * 4)), strict=True):
        torch.testing.assert_close(a, b)


def test_gradients_reach_every_parameter_and_the_backbone():
    backbone = build_backbone(14)
    neck = SimpleFeaturePyramid(in_channels=32, out_channels=8, in_index=(0, 1, 2, 3))
    x = torch.randn(1, 3, 3 * 14, 5 * 14)
    loss = sum(F.mse_loss(level, torch.ones_like(level)) for level in neck(backbone(x)))
    loss.backward()
    for name, parameter in neck.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale_factors=(3, 1)), "powers of two"),
        (dict(scale_factors=(0, 1)), "powers of two"),
        (dict(in_index=(0, 1)), "one entry per scale factor"),
        (dict(in_channels=6, scale_factors=(8,)), "halves in_channels"),
    ],
)
def test_bad_settings_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleFeaturePyramid(**{"in_channels": 32, **kwargs})
