"""Official DINOv3 ViT backbone weights (``dinov3_vit*16_pretrain_*.pth``, facebookresearch/dinov3).

The layout is DINOv2's with DINOv3's additions (``dinov3/models/vision_transformer.py``):
``storage_tokens`` (1, R, C) are the register tokens, ``rope_embed.periods`` (head_dim / 4,) the
RoPE periods (stored in bfloat16 by the released files), ``blocks.i.attn.qkv.bias_mask`` (3C,)
zeroes the key third of the qkv bias, SwiGLU sizes keep ``mlp.w1`` (gate) / ``w2`` / ``w3`` as three
linears, and 7B training checkpoints carry a ``local_cls_norm`` used only on local crops.

What the tensors do not say is read from the official hub definitions (``dinov3/hub/backbones.py``):
LayerNorm epsilon 1e-5, no training-time coordinate augmentation in eval, separate per-axis
coordinate normalisation. The head count comes from the periods: head_dim = 4 * len(periods).
"""

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..arch import ViTArch
from .infer import infer_arch, require_tensor

DINOV3_NORM_EPS = 1e-5
DINOV3_ROPE_BASE = 100.0
# Keys only the official DINOv3 .pth has (under any prefix): they tell it from DINOv2.
DINOV3_MARKERS = ("storage_tokens", "rope_embed.periods")
_DROPPED_PREFIXES = ("mask_token", "rope_embed.", "local_cls_norm.")


def is_official_dinov3(state: Mapping[str, Tensor]) -> bool:
    """Whether a backbone state dict (prefix removed) is in the official DINOv3 layout."""
    return any(key in state for key in DINOV3_MARKERS)


def convert_dinov3_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official DINOv3 backbone state dict -> :class:`RegisterViT` keys.

    Args:
        state: e.g. ``cls_token`` (1, 1, C), ``storage_tokens`` (1, R, C),
            ``patch_embed.proj.weight`` (C, 3, 16, 16), ``blocks.i.attn.qkv.bias`` (3C,) with
            ``bias_mask`` (3C,), ``blocks.i.mlp.w1.weight`` (H, C) or ``mlp.fc1.weight`` (H, C).

    Returns:
        Our names: ``register_tokens``; ``patch_embed.*``; SwiGLU ``w1`` / ``w2`` stacked into
        ``w12`` (2H, C), gate first. ``mask_token``, ``rope_embed.periods`` (read by
        :func:`arch_from_dinov3_official` instead), ``bias_mask`` (checked, then expressed by
        ``key_bias=False``) and ``local_cls_norm.*`` (7B, never used in eval) are dropped; unknown
        keys pass through so that loading reports them.

    Raises:
        ValueError: a ``bias_mask`` masks anything but exactly the key third, or a SwiGLU block
            lacks one of ``w1`` / ``w2``; ``cls_norm.*`` (untied cls norm, in no released model).
    """
    converted: dict[str, Tensor] = {}
    halves: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        if key.startswith("cls_norm."):
            raise ValueError(
                "an untied cls norm ('cls_norm.*', untie_cls_and_patch_norms) is not supported"
            )
        if key.endswith(".attn.qkv.bias_mask"):
            _check_bias_mask(key, value)
            continue
        if key == "storage_tokens":
            key = "register_tokens"
        elif key.startswith("patch_embed.proj."):
            key = "patch_embed." + key.removeprefix("patch_embed.proj.")
        elif ".mlp.w1." in key or ".mlp.w2." in key:
            fused = key.replace(".mlp.w1.", ".mlp.w12.").replace(".mlp.w2.", ".mlp.w12.")
            halves.setdefault(fused, {})["w1" if ".mlp.w1." in key else "w2"] = value
            continue
        converted[key] = value
    for key, parts in halves.items():
        if set(parts) != {"w1", "w2"}:
            raise ValueError(f"{key}: SwiGLU needs both mlp.w1 and mlp.w2, found {sorted(parts)}")
        converted[key] = torch.cat([parts["w1"], parts["w2"]], dim=0)
    return converted


def _check_bias_mask(key: str, mask: Tensor) -> None:
    third = mask.shape[0] // 3
    expected = torch.ones_like(mask)
    expected[third : 2 * third] = 0
    if not torch.equal(mask, expected):
        raise ValueError(f"{key} masks other entries than the key third of the qkv bias")


def dinov3_arch_hints(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """From the unconverted state: the keyword arguments of :func:`arch_from_dinov3_official`
    (the tensors conversion drops)."""
    return dict(
        periods=state.get("rope_embed.periods"),
        masked_key_bias=any(key.endswith(".attn.qkv.bias_mask") for key in state),
    )


def arch_from_dinov3_official(
    state: Mapping[str, Tensor], periods: Tensor | None, masked_key_bias: bool = True
) -> ViTArch:
    """The :class:`ViTArch` of converted official DINOv3 weights.

    Args:
        state: output of :func:`convert_dinov3_official`.
        periods: the file's ``rope_embed.periods`` (head_dim / 4,); ``None`` when it has none
            (then the head count comes from the presets of the same width, base 100 assumed).
        masked_key_bias: the file has ``qkv.bias_mask`` buffers (``mask_k_bias=True``, every
            released model); without them the key bias is used as stored.

    Raises:
        ValueError: the periods are not ``100 ** (4 i / head_dim)`` in float32 or bfloat16
            (another RoPE parametrisation, e.g. min / max periods), or the shapes are ambiguous.
    """
    num_heads, rounding = None, "float32"
    if periods is not None:
        head_dim = 4 * periods.numel()
        dim = require_tensor(state, "patch_embed.weight").shape[0]
        if dim % head_dim:
            raise ValueError(f"{periods.numel()} RoPE periods do not divide embed dim {dim}")
        num_heads = dim // head_dim
        rounding = periods_rounding(periods, head_dim)
    fields = dinov3_fields(rope_periods_dtype=rounding, key_bias=not masked_key_bias)
    return infer_arch(state, num_heads=num_heads, **fields)


def dinov3_fields(**overrides: Any) -> dict[str, Any]:
    """:func:`~dinoreg_dense.checkpoint.infer.infer_arch` arguments for a DINOv3 file: what the
    tensors cannot tell (LayerNorm eps 1e-5, RoPE base 100, masked key bias, float32 periods,
    no position table to resample)."""
    fields: dict[str, Any] = dict(
        # No table to resample: the ViTArch defaults, as in the presets.
        interpolate_antialias=ViTArch.interpolate_antialias,
        interpolate_offset=ViTArch.interpolate_offset,
        norm_eps=DINOV3_NORM_EPS,
        pos_encoding="rope",
        rope_base=DINOV3_ROPE_BASE,
        key_bias=False,
        rope_periods_dtype="float32",
    )
    return fields | overrides


def periods_rounding(periods: Tensor, head_dim: int) -> str:
    """``'bfloat16'`` or ``'float32'``: which rounding of ``100 ** (4 i / head_dim)`` the stored
    periods equal (the released files hold bfloat16 values).

    Raises:
        ValueError: they equal neither (the message gives the largest relative difference).
    """
    exponents = torch.arange(head_dim // 4, dtype=torch.float64) * 4 / head_dim
    exact = DINOV3_ROPE_BASE**exponents
    stored = periods.double()
    if torch.equal(stored, exact.to(torch.bfloat16).double()):
        return "bfloat16"
    if torch.allclose(stored, exact.float().double(), rtol=1e-6, atol=0.0):
        return "float32"
    worst = float(((stored - exact) / exact).abs().max())
    raise ValueError(
        f"rope_embed.periods are not base {DINOV3_ROPE_BASE:g} periods for head dim {head_dim} "
        f"(largest relative difference {worst:.3g}); only the base-100 parametrisation of the "
        "released models is supported"
    )
