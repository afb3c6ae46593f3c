"""``return_attention=True`` hands back the last block's attention split by token type: patch
q / k / v on the patch grid, the cls row and the register rows over the patches, for every token
layout. The reference is recomputed here from the last block's input, and the layout is written
out per case (and checked against the tokens entering the first block)."""

import pytest
import torch

from dinoreg_dense.backbones import RegisterViT, TokenAttention

TINY = dict(embed_dim=32, depth=2, num_heads=2, pos_embed_grid=4)
GRID = (4, 6)  # rows, cols of patches: non-square, and the width needs padding

# name, arch, overrides, cls row (None: no cls token), register rows
LAYOUTS = [
    ("dinov2-reg: [cls, reg, patches]", "vits14_reg4", dict(), 0, [1, 2, 3, 4]),
    (
        "birder: [reg, cls, patches]",
        "vits14_reg4",
        dict(registers_before_cls=True),
        4,
        [0, 1, 2, 3],
    ),
    ("no cls token: [reg, patches]", "vitm16_reg4_rms_nocls", dict(), None, [0, 1, 2, 3]),
    ("no registers: [cls, patches]", "vits14", dict(), 0, []),
]


def build(arch: str, overrides: dict) -> RegisterViT:
    model = RegisterViT(arch, **TINY, **overrides).eval()
    with torch.no_grad():  # distinct prefix tokens, so a wrong row cannot match by accident
        for param in (model.cls_token, model.register_tokens):
            if param is not None:
                param.normal_()
    return model


def reference(model: RegisterViT, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Tokens entering block 0, and q / k / v / softmax attention of the last block recomputed
    from its normed input: (B, T, C) and (B, heads, T, head_dim) x 3, (B, heads, T, T)."""
    seen = {}
    first = model.blocks[0].register_forward_pre_hook(lambda m, args: seen.update(first=args[0]))
    last = model.blocks[-1].norm1.register_forward_hook(lambda m, a, out: seen.update(last=out))
    try:
        with torch.no_grad():
            features = model.forward_intermediates(x, return_attention=True)
    finally:
        first.remove()
        last.remove()
    attn = model.blocks[-1].attn
    b, t, _ = seen["last"].shape
    with torch.no_grad():
        qkv = attn.qkv(seen["last"]).reshape(b, t, 3, attn.num_heads, attn.head_dim)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    weights = torch.softmax(q @ k.transpose(-2, -1) * attn.head_dim**-0.5, dim=-1)
    return features, seen["first"], q, k, v, weights


@pytest.mark.parametrize(
    "arch, overrides, cls_row, register_rows",
    [case[1:] for case in LAYOUTS],
    ids=[case[0] for case in LAYOUTS],
)
def test_attention_is_split_at_the_rows_of_each_layout(arch, overrides, cls_row, register_rows):
    model = build(arch, overrides)
    p = model.patch_size
    x = torch.randn(2, 3, GRID[0] * p, GRID[1] * p - 5)
    features, first_tokens, q, k, v, weights = reference(model, x)
    heads, head_dim = model.blocks[-1].attn.num_heads, model.blocks[-1].attn.head_dim
    h, w = GRID
    prefix = len(register_rows) + (cls_row is not None)
    assert q.shape[2] == prefix + h * w

    # The rows written above really are where the backbone puts cls and registers.
    if cls_row is not None:
        cls_in = model.cls_token[0, 0] + model.pos_embed[0, 0]
        torch.testing.assert_close(first_tokens[:, cls_row], cls_in.expand(2, -1))
    if register_rows:
        registers_in = model.register_tokens.expand(2, -1, -1)
        torch.testing.assert_close(first_tokens[:, register_rows], registers_in)

    split = features.attention
    assert isinstance(split, TokenAttention)
    assert features.patch_maps[-1].shape[-2:] == GRID
    for name in ("patch_queries", "patch_keys", "patch_values"):
        assert getattr(split, name).shape == (2, heads, h, w, head_dim), name
    assert split.register_attention.shape == (2, len(register_rows), heads, h, w)
    full = split.full
    for mine, theirs in zip(full[:4], (q, k, v, weights), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert full.q_content is full.q and full.k_content is full.k  # no RoPE: nothing rotated

    for i in range(h):
        for j in range(w):
            column = prefix + i * w + j  # row-major patch order
            torch.testing.assert_close(split.patch_queries[:, :, i, j], q[:, :, column])
            torch.testing.assert_close(split.patch_keys[:, :, i, j], k[:, :, column])
            torch.testing.assert_close(split.patch_values[:, :, i, j], v[:, :, column])
            if cls_row is not None:
                expected = weights[:, :, cls_row, column]
                torch.testing.assert_close(split.cls_attention[:, :, i, j], expected)
            for r, row in enumerate(register_rows):
                expected = weights[:, :, row, column]
                torch.testing.assert_close(split.register_attention[:, r, :, i, j], expected)
    if cls_row is None:
        assert split.cls_attention is None
    else:
        assert split.cls_attention.shape == (2, heads, h, w)
