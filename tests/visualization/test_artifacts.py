"""The numbers behind the artifact pictures: norms, the outlier rule, attention, PCA."""

import math

import pytest
import torch

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.visualization import pca_rgb
from dinoreg_dense.visualization.artifacts import (
    analyze_features,
    attention_entropy,
    find_outliers,
    grid_to_image,
    patch_token_norms,
    robust_norm_threshold,
    summarize,
)

TINY = dict(embed_dim=32, depth=3, num_heads=2, patch_size=8, pos_embed_grid=4, layerscale_init=1.0)


def build(arch: str) -> RegisterViT:
    torch.manual_seed(0)
    model = RegisterViT(arch, frozen=True, **TINY)
    with torch.no_grad():  # distinct prefix tokens, so a wrong row cannot match by accident
        for param in (model.cls_token, model.register_tokens):
            if param is not None:
                param.normal_()
        # Large block weights (and layerscale 1) make every block change the tokens a lot, so a
        # wrong layer cannot match by accident.
        for param in model.blocks.parameters():
            param.normal_(std=0.3)
    return model


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 4 * 8 - 3, 6 * 8 - 5, generator=torch.Generator().manual_seed(1))


def test_norms_are_those_of_the_backbone_patch_tokens_per_layer(image):
    model = build("vits14_reg4")
    analysis = analyze_features(model, image)
    with torch.no_grad():
        features = model.forward_intermediates(image, out_indices=[0, 1, 2], norm=False)
    assert analysis.indices == [0, 1, 2]
    assert analysis.norms.shape == (3, 4, 6)  # the patch grid: cls and registers dropped
    for layer, patch_map in enumerate(features.patch_maps):
        expected = torch.linalg.norm(patch_map[0], dim=0)
        torch.testing.assert_close(analysis.norms[layer], expected)
    assert not torch.allclose(analysis.norms[0], analysis.norms[-1])

    normed = analyze_features(model, image, final_norm=True)
    with torch.no_grad():
        last = model.forward_features(image)["x_norm_patchtokens"][0]
    torch.testing.assert_close(normed.norms[-1].flatten(), torch.linalg.norm(last, dim=-1))


def test_patch_token_norms_shape_and_values():
    maps = [torch.zeros(2, 3, 4, 5), torch.full((2, 3, 4, 5), 2.0)]
    norms = patch_token_norms(maps)
    assert norms.shape == (2, 2, 4, 5)
    torch.testing.assert_close(norms[1], torch.full((2, 4, 5), math.sqrt(12.0)))


def test_a_planted_high_norm_token_is_found_where_it_is():
    norms = 10 + torch.randn(12, 16, generator=torch.Generator().manual_seed(0))
    norms[3, 11] = 100.0
    outliers = find_outliers(norms)
    assert outliers.positions == [(3, 11)] and outliers.count == 1
    assert outliers.mask.sum() == 1 and outliers.mask[3, 11]
    assert 10 < outliers.threshold < 100


def test_no_outliers_on_a_flat_or_a_gaussian_map():
    flat = torch.full((12, 16), 7.0) + 1e-6 * torch.randn(12, 16)
    assert find_outliers(flat).count == 0
    assert robust_norm_threshold(flat) == pytest.approx(14.0, rel=1e-4)  # 2 x the median
    gaussian = 50 + torch.randn(40, 40, generator=torch.Generator().manual_seed(0))
    assert find_outliers(gaussian).count == 0


def test_the_paper_threshold_is_absolute():
    norms = torch.full((4, 4), 40.0)
    norms[0, 1], norms[2, 2] = 149.0, 151.0
    outliers = find_outliers(norms, threshold=150.0)
    assert outliers.positions == [(2, 2)] and outliers.threshold == 150.0


def test_cls_attention_is_the_last_block_row_and_sums_to_one_with_the_prefix(image):
    model = build("vits14_reg4")
    analysis = analyze_features(model, image)
    with torch.no_grad():
        features = model.forward_intermediates(
            image, out_indices=[1], norm=False, return_attention=True
        )
        # Independent reference: the last block run on the tokens of the block before it,
        # reassembled in DINOv2's order [cls, registers, patches].
        patches = features.patch_maps[0].flatten(2).transpose(1, 2)
        tokens = torch.cat(
            [features.cls_tokens[0][:, None], features.register_tokens[0], patches], dim=1
        )
        _, maps = model.blocks[-1].forward_with_attention(tokens)
    prefix = model.num_prefix_tokens
    torch.testing.assert_close(
        analysis.cls_attention, maps.attn[0, :, 0, prefix:].unflatten(-1, (4, 6))
    )
    full = features.attention.full.attn[0, :, 0]
    torch.testing.assert_close(analysis.cls_prefix_mass, full[:, :prefix].sum(-1))
    row_sums = analysis.cls_attention.sum((-2, -1)) + full[:, :prefix].sum(-1)
    torch.testing.assert_close(row_sums, torch.ones(2))
    assert (analysis.cls_prefix_mass > 0).all()


def test_register_attention_only_for_register_models(image):
    with_registers = analyze_features(build("vits14_reg4"), image)
    assert with_registers.register_attention.shape == (4, 2, 4, 6)
    assert len(summarize(with_registers)["register_attention"]["entropy"]) == 4
    without = analyze_features(build("vits14"), image)
    assert without.register_attention.shape[0] == 0
    assert summarize(without)["register_attention"]["entropy"] == []
    assert without.cls_attention.shape == (2, 4, 6)


def test_outliers_are_read_at_the_last_layer_and_counted_in_the_summary(image):
    model = build("vits14_reg4")
    with torch.no_grad():
        last = model.forward_intermediates(image, out_indices=[-1], norm=False).patch_maps[0]
    norms = torch.linalg.norm(last[0], dim=0)
    threshold = float(norms.median())
    analysis = analyze_features(model, image, threshold=threshold)
    expected = [tuple(p) for p in (norms > threshold).nonzero().tolist()]
    assert analysis.outliers.positions == expected
    summary = summarize(analysis)
    assert summary["outliers"]["positions"] == [list(p) for p in expected]
    assert summary["outliers"]["count"] == summary["layers"][-1]["outlier_count"] == len(expected)
    assert summary["outliers"]["block"] == summary["layers"][-1]["block"] == 2
    assert summary["layers"][-1]["norm_max"] == pytest.approx(float(norms.max()))
    assert summary["input_size"] == [29, 43] and summary["patch_grid"] == [4, 6]


def test_attention_entropy_in_nats():
    uniform = torch.full((3, 4, 5), 0.01)
    torch.testing.assert_close(attention_entropy(uniform), torch.full((3,), math.log(20)))
    peaked = torch.zeros(4, 5)
    peaked[1, 2] = 0.3
    assert float(attention_entropy(peaked)) == pytest.approx(0.0, abs=1e-6)


def test_grid_to_image_spreads_patches_and_crops_the_padding():
    grid = torch.arange(6.0).reshape(2, 3)
    pixels = grid_to_image(grid, patch_size=4, image_size=(7, 10))
    assert pixels.shape == (7, 10)
    assert pixels[0, 0] == 0 and pixels[3, 3] == 0 and pixels[4, 4] == 4 and pixels[6, 9] == 5
    with pytest.raises(ValueError, match="larger"):
        grid_to_image(grid, patch_size=4, image_size=(9, 10))


def test_pca_of_the_last_layer_is_an_rgb_picture(image):
    analysis = analyze_features(build("vits14_reg4"), image)
    colours = pca_rgb(analysis.last_patch_map)
    assert colours.shape == (4, 6, 3)
    assert colours.min() >= 0 and colours.max() <= 1
