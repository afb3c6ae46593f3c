"""MSDeformAttnPixelDecoder: equal to Hugging Face's Mask2FormerPixelDecoder on the same weights,
shapes on a patch-14 ViT pyramid with odd non-square levels, gradients to every parameter,
building from a dict, and the position embedding and reference points against hand values."""

import math

import pytest
import torch
from torch import Tensor

from dinoreg_dense.heads.mask2former.pixel_decoder import (
    MSDeformAttnPixelDecoder,
    encoder_reference_points,
)
from dinoreg_dense.heads.mask2former.position_encoding import sine_position_embedding
from dinoreg_dense.registry import MODELS

IN_CHANNELS = [8, 16, 24, 40]  # all different: a level fed to the wrong projection cannot run
# Finest first; odd, non-square, ceil-rounded at the coarsest (as a max-pooled 5x7 grid gives).
SIZES = [(20, 28), (10, 14), (5, 7), (3, 4)]
SMALL = dict(conv_dim=32, mask_dim=16, num_encoder_layers=2, num_heads=4, dim_feedforward=48)


def random_features(batch: int = 2, seed: int = 0) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, c, h, w, generator=generator)
        for c, (h, w) in zip(IN_CHANNELS, SIZES, strict=True)
    ]


def perturb_(module: torch.nn.Module, seed: int = 0) -> None:
    """Add noise to every parameter: at initialisation the offset and attention-weight matrices
    are zero, which would hide the queries' position and level embeddings from the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


def hf_state_dict(ours: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our parameter names -> those of HF's ``Mask2FormerPixelDecoder`` (one FPN level)."""
    renames = [
        ("encoder_layers.", "encoder.layers."),
        (".norm1.", ".self_attn_layer_norm."),
        (".norm2.", ".final_layer_norm."),
        (".linear1.", ".fc1."),
        (".linear2.", ".fc2."),
        ("lateral_convs.0.", "adapter_1."),
        ("output_convs.0.0.", "layer_1."),
        ("mask_features.", "mask_projection."),
    ]
    converted = {}
    for name, tensor in ours.items():
        for old, new in renames:
            name = name.replace(old, new)
        converted[name] = tensor
    return converted


def test_equals_hugging_face_pixel_decoder_on_the_same_weights():
    modeling = pytest.importorskip("transformers.models.mask2former.modeling_mask2former")
    from transformers import Mask2FormerConfig

    ours = MSDeformAttnPixelDecoder(IN_CHANNELS, **SMALL).eval()
    perturb_(ours)
    config = Mask2FormerConfig(
        feature_size=SMALL["conv_dim"],
        mask_feature_size=SMALL["mask_dim"],
        encoder_layers=SMALL["num_encoder_layers"],
        num_attention_heads=SMALL["num_heads"],
        encoder_feedforward_dim=SMALL["dim_feedforward"],
        dropout=0.0,
        feature_strides=[4, 8, 16, 32],
        common_stride=4,
    )
    theirs = modeling.Mask2FormerPixelDecoder(config, feature_channels=IN_CHANNELS).eval()
    theirs.load_state_dict(hf_state_dict(ours.state_dict()), strict=True)
    features = random_features()
    with torch.no_grad():
        mask_features, multi_scale = ours(features)
        reference = theirs(features)
    assert len(multi_scale) == len(reference.multi_scale_features) == 3
    for mine, hf in zip(multi_scale, reference.multi_scale_features, strict=True):
        torch.testing.assert_close(mine, hf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mask_features, reference.mask_features, rtol=1e-5, atol=1e-5)


def test_shapes_on_a_patch_14_vit_pyramid_with_a_5x7_grid():
    backbone = MODELS.build(
        dict(
            type="RegisterViT",
            arch="vits14_reg4",
            embed_dim=32,
            depth=2,
            num_heads=2,
            pos_embed_grid=4,
            patch_size=14,
            out_indices=(1,),
        )
    ).eval()
    neck = MODELS.build(dict(type="SimpleFeaturePyramid", in_channels=32, out_channels=32))
    decoder = MSDeformAttnPixelDecoder([32] * 4, **SMALL).eval()
    with torch.no_grad():
        levels = neck(backbone(torch.randn(2, 3, 5 * 14, 7 * 14)))
        mask_features, multi_scale = decoder(levels)
    assert [tuple(level.shape[-2:]) for level in levels] == SIZES
    assert mask_features.shape == (2, 16, 20, 28)
    # Coarsest first, as the transformer decoder cycles through them.
    assert [tuple(x.shape) for x in multi_scale] == [(2, 32, 3, 4), (2, 32, 5, 7), (2, 32, 10, 14)]


@pytest.mark.parametrize("num_deform_levels", [1, 3, 4])
def test_any_split_between_encoder_and_fpn_levels(num_deform_levels):
    decoder = MSDeformAttnPixelDecoder(IN_CHANNELS, num_deform_levels=num_deform_levels, **SMALL)
    mask_features, multi_scale = decoder(random_features(batch=1))
    assert mask_features.shape == (1, 16, 20, 28)
    expected = [(1, 32, h, w) for h, w in SIZES[::-1][:num_deform_levels]]
    assert [tuple(x.shape) for x in multi_scale] == expected


def test_gradients_reach_every_parameter():
    decoder = MSDeformAttnPixelDecoder(IN_CHANNELS, **SMALL)
    perturb_(decoder)
    mask_features, multi_scale = decoder(random_features())
    generator = torch.Generator().manual_seed(3)
    # A random cotangent: a plain sum of GroupNorm outputs would have zero gradient.
    loss = sum(
        (out * torch.randn(out.shape, generator=generator)).sum()
        for out in (mask_features, *multi_scale)
    )
    loss.backward()
    missing = [
        name
        for name, parameter in decoder.named_parameters()
        if parameter.grad is None or not parameter.grad.abs().sum() > 0
    ]
    assert not missing


def test_builds_from_a_dict():
    decoder = MODELS.build(dict(type="MSDeformAttnPixelDecoder", in_channels=IN_CHANNELS, **SMALL))
    assert isinstance(decoder, MSDeformAttnPixelDecoder)
    assert len(decoder.encoder_layers) == 2 and decoder.num_fpn_levels == 1


def test_rejects_a_wrong_number_of_levels():
    with pytest.raises(ValueError, match="num_deform_levels"):
        MSDeformAttnPixelDecoder(IN_CHANNELS, num_deform_levels=5, **SMALL)
    decoder = MSDeformAttnPixelDecoder(IN_CHANNELS, **SMALL)
    with pytest.raises(ValueError, match="4 levels"):
        decoder(random_features()[1:])


def test_position_embedding_by_hand():
    feats = 8
    pos = sine_position_embedding(5, 7, num_pos_feats=feats)
    assert pos.shape == (2 * feats, 5, 7)
    for y, x in [(0, 0), (2, 4), (4, 6)]:
        # 1-based position over the axis length, times 2 pi; pair k has period 10000^(2k/feats).
        angle_y = (y + 1) / 5 * 2 * math.pi
        angle_x = (x + 1) / 7 * 2 * math.pi
        for k in range(feats // 2):
            frequency = 10000 ** (2 * k / feats)
            expected = {
                2 * k: math.sin(angle_y / frequency),
                2 * k + 1: math.cos(angle_y / frequency),
                feats + 2 * k: math.sin(angle_x / frequency),
                feats + 2 * k + 1: math.cos(angle_x / frequency),
            }
            for channel, value in expected.items():
                assert pos[channel, y, x].item() == pytest.approx(value, abs=1e-5)


def test_reference_points_are_pixel_centres_per_level():
    points = encoder_reference_points([(2, 3), (1, 2)])
    expected = [
        # level 0: 2 rows x 3 columns, (x, y), row-major
        (1 / 6, 1 / 4),
        (3 / 6, 1 / 4),
        (5 / 6, 1 / 4),
        (1 / 6, 3 / 4),
        (3 / 6, 3 / 4),
        (5 / 6, 3 / 4),
        # level 1: 1 row x 2 columns
        (1 / 4, 1 / 2),
        (3 / 4, 1 / 2),
    ]
    torch.testing.assert_close(points, torch.tensor(expected))
