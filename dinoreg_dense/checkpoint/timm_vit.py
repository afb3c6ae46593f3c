"""timm ``VisionTransformer`` weights (``vit_*_patch14_dinov2``, ``*_reg4_dinov2``, DINO
``vit_*_patch{8,16}_224``).

timm names its register parameter ``reg_token``, packs DINOv2 ViT-g's SwiGLU in ``mlp.fc1`` /
``mlp.fc2`` and, for register models (``no_embed_class=True``), stores position embeddings for
the patches only: the official cls position row was added into ``cls_token`` when timm converted
the weights. The loader restores whichever layout the target model uses; the numbers stay equal.
"""

import re
from collections.abc import Mapping

from torch import Tensor

_MLP = re.compile(r"^(blocks\.\d+\.mlp\.)(fc1|fc2)\.(weight|bias)$")
_DROPPED_PREFIXES = ("head.", "fc_norm.", "head_drop.")


def convert_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """timm ViT state dict -> :class:`RegisterViT` keys.

    Args:
        state: e.g. ``cls_token`` (1, 1, C), ``reg_token`` (1, R, C), ``pos_embed`` (1, G, C)
            or (1, 1 + G, C), ``patch_embed.proj.weight`` (C, 3, p, p), ``blocks.i.mlp.fc1.weight``
            (H, C) or, for SwiGLU, (2H, C) with ``fc2.weight`` (C, H).

    Returns:
        The tensors under our names (SwiGLU ``fc1`` / ``fc2`` become ``w12`` / ``w3``); the
        classifier ``head.*`` / ``fc_norm.*`` dropped; unknown keys passed through unchanged.
        ``pos_embed`` keeps the rows it had.
    """
    swiglu_blocks = {match.group(1) for key in state if (match := _MLP.match(key))}
    swiglu_blocks = {block for block in swiglu_blocks if _is_packed_swiglu(state, block)}
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        mlp = _MLP.match(key)
        if key == "reg_token":
            key = "register_tokens"
        elif key.startswith("patch_embed.proj."):
            key = "patch_embed." + key.removeprefix("patch_embed.proj.")
        elif mlp and mlp.group(1) in swiglu_blocks:
            key = f"{mlp.group(1)}{'w12' if mlp.group(2) == 'fc1' else 'w3'}.{mlp.group(3)}"
        converted[key] = value
    return converted


def _is_packed_swiglu(state: Mapping[str, Tensor], block_mlp: str) -> bool:
    # A GELU MLP maps C -> H -> C; timm's packed SwiGLU maps C -> 2H (gate, value) -> C.
    fc1, fc2 = state.get(block_mlp + "fc1.weight"), state.get(block_mlp + "fc2.weight")
    return fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]
