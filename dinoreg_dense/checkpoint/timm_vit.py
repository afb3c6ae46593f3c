"""timm ``VisionTransformer`` weights (``vit_*_patch14_dinov2``, ``*_reg4_dinov2``, DINO
``vit_*_patch{8,16}_224``) and timm's DINOv3 ``Eva`` weights (``vit_*_patch16_dinov3[_qkvb]``).

timm names its register parameter ``reg_token``, packs DINOv2 ViT-g's SwiGLU in ``mlp.fc1`` /
``mlp.fc2`` and, for register models (``no_embed_class=True``), stores position embeddings for
the patches only: the official cls position row was added into ``cls_token`` when timm converted
the weights. The loader restores whichever layout the target model uses; the numbers stay equal.

timm's DINOv3 models are ``Eva`` modules (``timm/models/eva.py``): LayerScale as ``gamma_1`` /
``gamma_2``, the qkv bias as separate ``attn.q_bias`` / ``attn.v_bias`` (no key bias: DINOv3
masks it), SwiGLU as ``mlp.fc1_g`` (gate) / ``mlp.fc1_x`` / ``mlp.fc2``, no position table (RoPE,
computed, never stored). The ``vit_*_dinov3`` variants without ``_qkvb`` have no qkv bias.
"""

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from ..arch import ViTArch

_MLP = re.compile(r"^(blocks\.\d+\.mlp\.)(fc1|fc2)\.(weight|bias)$")
_DROPPED_PREFIXES = ("head.", "fc_norm.", "head_drop.")
# Eva (timm's DINOv3) names -> ours; q / v biases and the SwiGLU halves are fused separately.
_EVA_RENAMES = {".gamma_1": ".ls1.gamma", ".gamma_2": ".ls2.gamma"}
_EVA_FUSED = re.compile(
    r"^(blocks\.\d+\.)(attn\.q_bias|attn\.v_bias|mlp\.fc1_g\.|mlp\.fc1_x\.)(.*)$"
)


def convert_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """timm ViT (or DINOv3 Eva) state dict -> :class:`RegisterViT` keys.

    Args:
        state: e.g. ``cls_token`` (1, 1, C), ``reg_token`` (1, R, C), ``pos_embed`` (1, G, C)
            or (1, 1 + G, C), ``patch_embed.proj.weight`` (C, 3, p, p), ``blocks.i.mlp.fc1.weight``
            (H, C) or, for SwiGLU, (2H, C) with ``fc2.weight`` (C, H); Eva: ``blocks.i.gamma_1``
            (C,), ``attn.q_bias`` / ``attn.v_bias`` (C,), ``mlp.fc1_g`` / ``fc1_x`` (H, C).

    Returns:
        The tensors under our names (SwiGLU ``fc1`` / ``fc2`` become ``w12`` / ``w3``); the
        classifier ``head.*`` / ``fc_norm.*`` dropped; unknown keys passed through unchanged.
        ``pos_embed`` keeps the rows it had.

    Raises:
        ValueError: an Eva block holds only one of ``q_bias`` / ``v_bias`` or of the SwiGLU
            halves.
    """
    swiglu_blocks = {match.group(1) for key in state if (match := _MLP.match(key))}
    swiglu_blocks = {block for block in swiglu_blocks if _is_packed_swiglu(state, block)}
    eva_swiglu = any(".mlp.fc1_g." in key for key in state)
    converted: dict[str, Tensor] = {}
    fused: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        eva = _EVA_FUSED.match(key)
        if eva:
            block, part, param = eva.groups()
            target = (
                f"{block}attn.qkv.bias" if part.startswith("attn") else f"{block}mlp.w12.{param}"
            )
            fused.setdefault(target, {})[part.rstrip(".")] = value
            continue
        for old, new in _EVA_RENAMES.items():
            if key.endswith(old):
                key = key.removesuffix(old) + new
        mlp = _MLP.match(key)
        if key == "reg_token":
            key = "register_tokens"
        elif key.startswith("patch_embed.proj."):
            key = "patch_embed." + key.removeprefix("patch_embed.proj.")
        elif mlp and (mlp.group(1) in swiglu_blocks or (eva_swiglu and mlp.group(2) == "fc2")):
            key = f"{mlp.group(1)}{'w12' if mlp.group(2) == 'fc1' else 'w3'}.{mlp.group(3)}"
        converted[key] = value
    for key, parts in fused.items():
        converted[key] = _fuse_eva(key, parts)
    return converted


def _fuse_eva(key: str, parts: dict[str, Tensor]) -> Tensor:
    """Eva's separate q / v biases -> one (3C,) qkv bias with a zero key third (exact: our DINOv3
    attention masks it); its SwiGLU ``fc1_g`` / ``fc1_x`` -> ``w12`` (gate first)."""
    if key.endswith("qkv.bias"):
        if set(parts) != {"attn.q_bias", "attn.v_bias"}:
            raise ValueError(f"{key}: timm Eva needs both q_bias and v_bias, got {sorted(parts)}")
        query = parts["attn.q_bias"]
        return torch.cat([query, torch.zeros_like(query), parts["attn.v_bias"]])
    if set(parts) != {"mlp.fc1_g", "mlp.fc1_x"}:
        raise ValueError(f"{key}: timm SwiGLU needs both fc1_g and fc1_x, got {sorted(parts)}")
    return torch.cat([parts["mlp.fc1_g"], parts["mlp.fc1_x"]], dim=0)


def is_timm_dinov3(state: Mapping[str, Tensor]) -> bool:
    """Whether a timm state dict is a DINOv3 ``Eva`` (registers, no position table)."""
    return "reg_token" in state and "pos_embed" not in state


def _is_packed_swiglu(state: Mapping[str, Tensor], block_mlp: str) -> bool:
    # A GELU MLP maps C -> H -> C; timm's packed SwiGLU maps C -> 2H (gate, value) -> C.
    fc1, fc2 = state.get(block_mlp + "fc1.weight"), state.get(block_mlp + "fc2.weight")
    return fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]


def fit_cls_pos_row(state: Mapping[str, Tensor], arch: ViTArch) -> dict[str, Tensor]:
    """Give ``pos_embed`` the cls row ``arch`` expects, without changing any output.

    A file without a cls position row (timm register models) gets a zero row; a model without
    one gets the file's row added into ``cls_token``. Both are exact: the cls token only ever
    enters the network as ``cls_token + pos_embed[:, 0]``.

    Args:
        state: converted tensors, ``pos_embed`` (1, G or 1 + G, C), ``cls_token`` (1, 1, C).
        arch: the target architecture (G = its position grid's size).
    """
    state = dict(state)
    if not arch.class_token or "pos_embed" not in state or "cls_token" not in state:
        return state
    pos = state["pos_embed"]
    grid = arch.pos_embed_grid[0] * arch.pos_embed_grid[1]
    if arch.pos_embed_includes_cls and pos.shape[1] == grid:
        state["pos_embed"] = torch.cat([pos.new_zeros(1, 1, pos.shape[2]), pos], dim=1)
    elif not arch.pos_embed_includes_cls and pos.shape[1] == grid + 1:
        state["cls_token"] = state["cls_token"] + pos[:, :1]
        state["pos_embed"] = pos[:, 1:]
    return state
