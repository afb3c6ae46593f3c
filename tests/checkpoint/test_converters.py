"""The pure pieces behind loading: HF config reading, key conversion corner cases, the cls
position row, and architecture inference from shapes."""

import pytest
import torch

from dinoreg_dense.backbones import ViTArch
from dinoreg_dense.checkpoint import (
    arch_from_hf_config,
    convert_hf,
    convert_timm,
    fit_cls_pos_row,
    infer_arch,
)
from dinoreg_dense.checkpoint.infer import mlp_ratio_for

SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6)


def test_hf_config_defaults_match_transformers():
    # An old DINO v1 config.json without qkv_bias or layer_norm_eps; HF's defaults apply.
    vit = arch_from_hf_config(dict(model_type="vit", **SMALL, intermediate_size=1536))
    assert (vit.patch_size, vit.norm_eps, vit.qkv_bias, vit.layerscale_init) == (
        16,
        1e-12,
        True,
        None,
    )
    assert vit.pos_embed_grid == (14, 14) and vit.mlp_ratio == 4.0
    reg = arch_from_hf_config(dict(model_type="dinov2_with_registers", **SMALL, image_size=518))
    assert (reg.patch_size, reg.num_register_tokens, reg.interpolate_antialias) == (16, 4, True)
    plain = arch_from_hf_config(
        dict(model_type="dinov2", **SMALL, image_size=518, use_swiglu_ffn=True)
    )
    assert plain.ffn_layer == "swiglu" and plain.pos_embed_grid == (37, 37)
    assert (plain.interpolate_antialias, plain.interpolate_offset) == (False, 0.0)


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(model_type="vit", hidden_act="gelu_new", **SMALL), "gelu_new"),
        (dict(model_type="dinov2", hidden_size=384), "num_hidden_layers"),
        (dict(model_type="beit", **SMALL), "beit"),
    ],
)
def test_hf_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        arch_from_hf_config(config)


def test_mlp_ratio_reproduces_every_width():
    for dim in range(8, 1025, 24):
        for hidden in range(dim, 5 * dim, 13):
            assert int(dim * mlp_ratio_for(dim, hidden)) == hidden


def test_incomplete_hf_qkv_keeps_its_original_names():
    weight = torch.zeros(4, 4)
    state = {
        "encoder.layer.0.attention.attention.query.weight": weight,
        "encoder.layer.0.attention.attention.key.weight": weight,
    }
    assert set(convert_hf(state)) == set(state)  # reported as unexpected, never half-fused


def test_timm_packed_swiglu_is_told_apart_from_a_gelu_mlp():
    swiglu = {
        "blocks.0.mlp.fc1.weight": torch.zeros(16, 4),
        "blocks.0.mlp.fc2.weight": torch.zeros(4, 8),
    }
    gelu = {
        "blocks.0.mlp.fc1.weight": torch.zeros(16, 4),
        "blocks.0.mlp.fc2.weight": torch.zeros(4, 16),
    }
    assert set(convert_timm(swiglu)) == {"blocks.0.mlp.w12.weight", "blocks.0.mlp.w3.weight"}
    assert set(convert_timm(gelu)) == set(gelu)


def test_cls_position_row_is_added_or_folded_exactly():
    cls, row, grid = torch.randn(1, 1, 8), torch.randn(1, 1, 8), torch.randn(1, 4, 8)
    with_row = ViTArch(embed_dim=8, num_heads=2, pos_embed_grid=(2, 2))
    without_row = ViTArch(
        embed_dim=8, num_heads=2, pos_embed_grid=(2, 2), pos_embed_includes_cls=False
    )
    # timm layout (no row) into a model with a row: a zero row
    padded = fit_cls_pos_row({"cls_token": cls, "pos_embed": grid}, with_row)
    assert torch.equal(padded["pos_embed"][:, 0], torch.zeros(1, 8))
    assert torch.equal(padded["pos_embed"][:, 1:], grid) and torch.equal(padded["cls_token"], cls)
    # official layout (row) into a model without one: the row moves into the cls token
    folded = fit_cls_pos_row(
        {"cls_token": cls, "pos_embed": torch.cat([row, grid], 1)}, without_row
    )
    assert torch.equal(folded["cls_token"], cls + row) and torch.equal(folded["pos_embed"], grid)


def test_inference_refuses_ambiguous_shapes():
    state = {
        "patch_embed.weight": torch.zeros(384, 3, 14, 14),
        "cls_token": torch.zeros(1, 1, 384),
        "pos_embed": torch.zeros(1, 1 + 12 * 20, 384),  # a 12 x 20 grid cannot be told from 240
        "blocks.0.mlp.fc1.weight": torch.zeros(1536, 384),
    }
    with pytest.raises(ValueError, match="square grid"):
        infer_arch(state, interpolate_antialias=True, interpolate_offset=0.0)
    state["pos_embed"] = torch.zeros(1, 1 + 16 * 16, 384)
    arch = infer_arch(state, interpolate_antialias=True, interpolate_offset=0.0)
    assert (arch.pos_embed_grid, arch.depth, arch.num_heads, arch.layerscale_init) == (
        (16, 16),
        1,
        6,
        None,
    )
