"""Official DINO v1 and DINOv2 (with or without registers) backbone weights.

Both repositories use the key layout of :class:`RegisterViT` except for three details: the
patch embedding is a ``PatchEmbed`` module (``patch_embed.proj.*``), DINOv2 keeps a
``mask_token`` used only by iBOT pre-training, and ViT-g training checkpoints group blocks in
``BlockChunk`` lists, ``blocks.<chunk>.<block>.*``, where ``<block>`` is already the global index.
"""

import re
from collections.abc import Mapping

from torch import Tensor

_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+)\.(.+)$")
_DROPPED = ("mask_token",)


def is_chunked(state: Mapping[str, Tensor]) -> bool:
    """Whether blocks are stored as DINOv2 ``BlockChunk`` lists (``blocks.0.3.norm1.weight``)."""
    return any(_CHUNKED_BLOCK.match(key) for key in state)


def convert_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official DINO / DINOv2 backbone state dict -> :class:`RegisterViT` keys.

    Args:
        state: backbone tensors without container prefixes, e.g. ``cls_token`` (1, 1, C),
            ``pos_embed`` (1, 1 + G, C), ``register_tokens`` (1, R, C),
            ``patch_embed.proj.weight`` (C, 3, p, p), ``blocks.i.attn.qkv.weight`` (3C, C).

    Returns:
        The same tensors under our names; ``mask_token`` dropped. Keys this function does not
        know are passed through unchanged so that loading reports them.
    """
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in _DROPPED:
            continue
        chunked = _CHUNKED_BLOCK.match(key)
        if chunked:
            key = f"blocks.{chunked.group(1)}.{chunked.group(2)}"
        elif key.startswith("patch_embed.proj."):
            key = "patch_embed." + key.removeprefix("patch_embed.proj.")
        converted[key] = value
    return converted
