"""discovery_features: heads concatenated in LOST's order, cls and registers never among the
patches, for every token layout of the backbone."""

import pytest
import torch

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.discovery import discovery_features

TINY = dict(embed_dim=32, depth=2, num_heads=4, pos_embed_grid=4)

# name, arch, overrides: the layouts RegisterViT knows (see tests/backbones).
LAYOUTS = [
    ("[cls, reg, patches]", "vits14_reg4", dict()),
    ("[reg, cls, patches]", "vits14_reg4", dict(registers_before_cls=True)),
    ("[reg, patches]", "vitm16_reg4_rms_nocls", dict()),
    ("[cls, patches]", "vits14", dict()),
    ("[cls, reg, patches], RoPE", "vits16_dinov3", dict()),
]
# AttentionMaps fields of the features: queries and keys before RoPE (q_content, k_content).
FIELDS = {"q": 4, "k": 5, "v": 2}


@pytest.mark.parametrize("arch, overrides", [c[1:] for c in LAYOUTS], ids=[c[0] for c in LAYOUTS])
@pytest.mark.parametrize("which", ["k", "q", "v"])
def test_patch_rows_with_heads_concatenated(arch, overrides, which):
    model = RegisterViT(arch, **TINY, **overrides).eval()
    with torch.no_grad():  # distinct prefix tokens, so a prefix row cannot pass for a patch
        for param in (model.cls_token, model.register_tokens):
            if param is not None:
                param.normal_(std=10.0)
    p = model.patch_size
    h, w = 3, 5
    images = torch.randn(2, 3, h * p, w * p - 3)  # the width needs padding
    with torch.no_grad():
        out = model.forward_intermediates(images, return_attention=True)
    features = discovery_features(out.attention, which)
    heads, head_dim = model.blocks[-1].attn.num_heads, model.blocks[-1].attn.head_dim
    assert features.shape == (2, h, w, heads * head_dim)

    full = out.attention.full[FIELDS[which]]  # (B, heads, T, head_dim) in token order
    prefix = model.num_prefix_tokens
    assert full.shape[2] == prefix + h * w  # patches are the last h * w tokens
    for i in range(h):
        for j in range(w):
            token = full[:, :, prefix + i * w + j]  # (B, heads, head_dim)
            for head in range(heads):
                channels = slice(head * head_dim, (head + 1) * head_dim)
                torch.testing.assert_close(features[:, i, j, channels], token[:, head])
    # No cls or register row appears among the patch features.
    prefix_rows = full[:, :, :prefix].transpose(1, 2).flatten(2)  # (B, prefix, C)
    patch_rows = features.flatten(1, 2)
    distance = torch.cdist(patch_rows, prefix_rows) if prefix else torch.ones(1)
    assert distance.min() > 1e-3


def test_unknown_field_is_an_error():
    model = RegisterViT("vits14_reg4", **TINY).eval()
    with torch.no_grad():
        out = model.forward_intermediates(torch.randn(1, 3, 28, 28), return_attention=True)
    with pytest.raises(ValueError, match="which"):
        discovery_features(out.attention, "keys")


@pytest.mark.parametrize("which", ["k", "q"])
def test_dinov3_discovery_features_do_not_depend_on_position(which):
    """LOST and TokenCut compare patches by the dot product / cosine of their keys. RoPE rotates
    a patch's key by its position, so after RoPE two patches of identical content compare as
    k_i . R(p_j - p_i) k_i: the similarity falls with their distance. One block on a uniform
    image (no position table, no padding): every patch token is the same at the block's input,
    so keys and queries taken before RoPE are the same at every patch."""
    model = RegisterViT("vits16_dinov3", embed_dim=32, depth=1, num_heads=4).eval()
    image = torch.full((1, 3, 64, 96), 0.5)  # a 4 x 6 grid of equal patches
    with torch.no_grad():
        out = model.forward_intermediates(image, return_attention=True)
    features = discovery_features(out.attention, which).flatten(1, 2)[0]  # (24, C)
    torch.testing.assert_close(features, features[:1].expand_as(features))
