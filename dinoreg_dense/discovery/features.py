"""Patch features for object discovery, taken from the backbone's attention split by token type."""

from torch import Tensor

from ..backbones.attention import TokenAttention

_PATCH_FIELDS = {"q": "patch_queries", "k": "patch_keys", "v": "patch_values"}


def discovery_features(attention: TokenAttention, which: str = "k") -> Tensor:
    """Per-patch queries, keys or values of one attention layer with the heads concatenated.

    LOST and TokenCut use the last block's keys for DINO and DINOv2 and its values for DeiT-III
    and OpenCLIP (registers paper, arXiv 2309.16588, Sec. 3.3). The cls token and every register
    are already dropped by :meth:`~dinoreg_dense.backbones.RegisterViT.split_attention`, whatever
    the token layout, unlike LOST's ``k[:, 1:]`` which keeps the registers as patches.

    Args:
        attention: :class:`~dinoreg_dense.backbones.TokenAttention` from
            ``RegisterViT.forward_intermediates(x, return_attention=True).attention``.
        which: ``"k"`` (keys), ``"q"`` (queries) or ``"v"`` (values).

    Returns:
        (B, h, w, heads * head_dim); channel ``i * head_dim + j`` is channel ``j`` of head ``i``,
        the order of LOST's ``k.transpose(1, 2).reshape(B, T, -1)``.

    Raises:
        ValueError: ``which`` is not one of ``"k"``, ``"q"``, ``"v"``.
    """
    if which not in _PATCH_FIELDS:
        raise ValueError(f"which must be one of {sorted(_PATCH_FIELDS)}, got {which!r}")
    per_head = getattr(attention, _PATCH_FIELDS[which])  # (B, heads, h, w, head_dim)
    b, heads, h, w, head_dim = per_head.shape
    return per_head.permute(0, 2, 3, 1, 4).reshape(b, h, w, heads * head_dim)
