"""RegisterViT: output shapes and layer selection, token layout, padding, freezing, attention
outputs, and every preset built from a config dict."""

import pytest
import torch
from torch import nn

from dinoreg_dense.backbones import ARCHS, RegisterViT
from dinoreg_dense.registry import MODELS

SMALL = dict(embed_dim=64, depth=4, num_heads=2, num_register_tokens=4, pos_embed_grid=(4, 4))


def build(**kwargs) -> RegisterViT:
    cfg = dict(type="RegisterViT", arch="vits14_reg4", **SMALL)
    cfg.update(kwargs)
    return MODELS.build(cfg).eval()


def identity_blocks_(model: RegisterViT) -> RegisterViT:
    """Zero every residual branch's output layer so each block returns its input."""
    with torch.no_grad():
        for block in model.blocks:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()
    return model


def images(height: int = 56, width: int = 70, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "out_indices, expected",
    [((0, 2), [0, 2]), ((-1,), [3]), (2, [2, 3]), ((-4, -1), [0, 3]), (4, [0, 1, 2, 3])],
)
def test_maps_are_4d_for_the_requested_layers(out_indices, expected):
    model = build(out_indices=out_indices)
    features = model(images())
    assert features.indices == expected
    assert len(features.patch_maps) == len(expected)
    for patch_map, cls, regs in zip(
        features.patch_maps, features.cls_tokens, features.register_tokens, strict=True
    ):
        assert patch_map.shape == (2, 64, 4, 5)
        assert cls.shape == (2, 64)
        assert regs.shape == (2, 4, 64)
    assert features.patch_size == 14 and features.num_prefix_tokens == 5


@pytest.mark.parametrize("out_indices", [(4,), (-5,), (), 0, 5])
def test_invalid_out_indices_raise(out_indices):
    with pytest.raises(ValueError):
        build(out_indices=out_indices)


def test_norm_outputs_equal_applying_the_final_norm():
    model = build(out_indices=(1, 3))
    x = images()
    with torch.no_grad():
        raw = model.forward_intermediates(x, norm=False)
        normed = model.forward_intermediates(x, norm=True)
    for i in range(2):
        tokens = raw.patch_maps[i].flatten(2).transpose(1, 2)
        expected = model.norm(tokens).transpose(1, 2).reshape(raw.patch_maps[i].shape)
        torch.testing.assert_close(normed.patch_maps[i], expected)
        torch.testing.assert_close(normed.cls_tokens[i], model.norm(raw.cls_tokens[i]))
        torch.testing.assert_close(normed.register_tokens[i], model.norm(raw.register_tokens[i]))
    assert not torch.allclose(raw.patch_maps[0], normed.patch_maps[0])


@pytest.mark.parametrize("registers_before_cls", [False, True])
def test_cls_and_registers_come_out_where_they_went_in(registers_before_cls):
    model = identity_blocks_(build(registers_before_cls=registers_before_cls))
    with torch.no_grad():
        model.cls_token.normal_()
        model.register_tokens.normal_()
        model.pos_embed.normal_()
        features = model.forward_intermediates(images(), out_indices=(-1,), norm=False)
        sequence = model.forward_features(images())["x_prenorm"]
    cls = (model.cls_token + model.pos_embed[:, :1])[0, 0]
    regs = model.register_tokens[0]
    torch.testing.assert_close(features.cls_tokens[0][0], cls)
    torch.testing.assert_close(features.register_tokens[0][0], regs)
    cls_at, regs_at = (4, slice(0, 4)) if registers_before_cls else (0, slice(1, 5))
    torch.testing.assert_close(sequence[0, cls_at], cls)
    torch.testing.assert_close(sequence[0, regs_at], regs)


def test_no_cls_token_rmsnorm_arch():
    model = build(class_token=False, norm_layer="rmsnorm", pos_embed_includes_cls=False)
    assert isinstance(model.norm, nn.RMSNorm) and model.cls_token is None
    assert model.num_prefix_tokens == 4 and model.pos_embed.shape == (1, 16, 64)
    features = model(images())
    assert features.cls_tokens is None
    assert features.register_tokens[0].shape == (2, 4, 64)
    assert features.patch_maps[0].shape == (2, 64, 4, 5)
    assert model.forward_features(images())["x_norm_clstoken"] is None


def test_padding_is_reported_and_equals_explicit_zero_padding():
    model = build()
    x = images(50, 60)
    features = model(x)
    assert features.padding == (6, 10)  # 50 -> 56, 60 -> 70
    assert features.patch_maps[0].shape[-2:] == (4, 5)
    padded = model(torch.nn.functional.pad(x, (0, 10, 0, 6)))
    torch.testing.assert_close(features.patch_maps[0], padded.patch_maps[0])
    assert padded.padding == (0, 0)


@pytest.mark.parametrize("shape", [(3, 56, 56), (1, 1, 56, 56)])
def test_non_image_input_raises(shape):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        build()(torch.zeros(shape))


def test_frozen_backbone_stays_in_eval_without_grads():
    model = build(frozen=True, drop_path_rate=0.5)
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    x = images().requires_grad_()
    out = model(x).patch_maps[0]
    out.sum().backward()
    assert all(p.grad is None for p in model.parameters())
    assert x.grad is not None  # gradients still reach the input (e.g. for attribution)
    # eval mode: stochastic depth is off, so outputs are deterministic
    torch.testing.assert_close(model(images()).patch_maps[0], model(images()).patch_maps[0])


def test_unfrozen_backbone_trains():
    model = build()
    model.train()
    assert model.training and model.blocks[0].training
    model(images()).patch_maps[0].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_return_attention_matches_the_ordinary_forward():
    model = build(out_indices=(1, 3))
    x = images()
    with torch.no_grad():
        plain = model.forward_intermediates(x)
        with_attention = model.forward_intermediates(x, return_attention=True)
    for a, b in zip(plain.patch_maps, with_attention.patch_maps, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain.cls_tokens[-1], with_attention.cls_tokens[-1])
    maps = with_attention.attention.full
    tokens = 5 + 4 * 5
    assert maps.attn.shape == (2, 2, tokens, tokens)
    assert maps.q.shape == maps.k.shape == maps.v.shape == (2, 2, tokens, 32)
    torch.testing.assert_close(maps.attn.sum(-1), torch.ones(2, 2, tokens))
    expected = torch.softmax(maps.q @ maps.k.transpose(-2, -1) * 32**-0.5, dim=-1)
    torch.testing.assert_close(maps.attn, expected)
    assert plain.attention is None


def test_return_attention_runs_all_blocks_even_for_early_outputs():
    model = build(out_indices=(0,))
    with torch.no_grad():
        features = model.forward_intermediates(images(), return_attention=True)
        last = model.forward_intermediates(images(), out_indices=(-1,), return_attention=True)
    assert features.indices == [0]
    torch.testing.assert_close(features.attention.full.attn, last.attention.full.attn)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_preset_builds_from_a_config_dict_and_runs(name):
    arch = ARCHS[name]
    model = MODELS.build(dict(type="RegisterViT", arch=name, depth=1, out_indices=(0,)))
    assert isinstance(model, RegisterViT) and model.embed_dim == arch.embed_dim
    p = arch.patch_size
    with torch.no_grad():
        features = model(torch.randn(1, 3, 2 * p, 3 * p))
    assert features.patch_maps[0].shape == (1, arch.embed_dim, 2, 3)
    assert features.register_tokens[0].shape == (1, arch.num_register_tokens, arch.embed_dim)
    assert (features.cls_tokens is None) == (not arch.class_token)


def test_unknown_arch_and_unknown_argument_fail():
    with pytest.raises(ValueError, match="unknown backbone arch 'vitz14' \\(did you mean 'vits14'"):
        MODELS.build(dict(type="RegisterViT", arch="vitz14"))
    with pytest.raises(TypeError, match="unknown arguments \\['embed_dims'\\].*'embed_dim'"):
        MODELS.build(dict(type="RegisterViT", arch="vits14", embed_dims=384))


def test_native_grid_uses_the_position_embeddings_unchanged():
    model = identity_blocks_(build(num_register_tokens=0))
    with torch.no_grad():
        model.patch_embed.weight.zero_()
        model.patch_embed.bias.zero_()
        features = model.forward_intermediates(images(56, 56), out_indices=(-1,), norm=False)
    # zero patch embedding + identity blocks: the patch tokens are the position embeddings
    patches = features.patch_maps[0].flatten(2).transpose(1, 2)
    torch.testing.assert_close(patches[0], model.pos_embed[0, 1:])


def test_frozen_backbone_records_no_graph_unless_the_input_needs_gradients():
    from dinoreg_dense.registry import MODELS

    cfg = dict(type="RegisterViT", arch="vits14_reg4", embed_dim=32, depth=2, num_heads=2)
    frozen = MODELS.build(dict(cfg, frozen=True))
    x = torch.randn(1, 3, 28, 28)
    assert frozen(x).patch_maps[0].grad_fn is None
    x.requires_grad_(True)
    frozen(x).patch_maps[0].square().sum().backward()  # e.g. saliency w.r.t. the image
    assert x.grad is not None and x.grad.abs().sum() > 0
    trainable = MODELS.build(cfg)
    assert trainable(torch.randn(1, 3, 28, 28)).patch_maps[0].grad_fn is not None


def test_an_arch_list_from_the_command_line_names_the_right_spelling():
    """MMEngine's --cfg-options turns "model.backbone.arch='vitb16_dinov3', depth=4" into a list."""
    with pytest.raises(ValueError, match="model.backbone.arch=vits16_dinov3 model.backbone.depth"):
        MODELS.build(dict(type="RegisterViT", arch=["vitb16_dinov3", "depth=4"]))


def test_out_indices_beyond_the_depth_name_the_config_key():
    with pytest.raises(ValueError, match="4-block backbone; set model.backbone.out_indices"):
        MODELS.build(dict(type="RegisterViT", arch="vits16_dinov3", depth=4, out_indices=[2, 5]))
