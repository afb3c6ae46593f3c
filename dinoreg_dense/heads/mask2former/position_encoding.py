"""2D sine position embedding of a feature map (DETR's, as Mask2Former uses it).

Source: Carion et al., "End-to-End Object Detection with Transformers" (ECCV 2020,
arXiv 2005.12872), section A.4, and its normalised variant used by Mask2Former (Cheng et al. 2022,
arXiv 2112.01527) for the keys of the masked cross-attention and of the deformable pixel decoder.
"""

import math

import torch
from torch import Tensor


def sine_position_embedding(
    height: int,
    width: int,
    num_pos_feats: int,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Normalised 2D sine / cosine position embedding of an unpadded ``height x width`` map.

    Row ``y`` (1-based) and column ``x`` are first scaled to ``y / height * scale`` and
    ``x / width * scale`` (the last row / column reaches ``scale``); each is then encoded by
    ``num_pos_feats`` channels: channel pair (2k, 2k + 1) holds ``sin`` / ``cos`` of the coordinate
    divided by ``temperature ** (2k / num_pos_feats)``.

    Args:
        height, width: map size.
        num_pos_feats: channels per axis; the output has ``2 * num_pos_feats`` channels.
        temperature: base of the frequency ladder.
        scale: range the normalised coordinates span.
        device, dtype: of the result.

    Returns:
        (2 * num_pos_feats, height, width): the y encoding in the first ``num_pos_feats``
        channels, the x encoding in the rest.
    """
    eps = 1e-6  # the references' guard in the normalisation; kept so values match theirs
    y_embed = torch.arange(1, height + 1, device=device, dtype=dtype) / (height + eps) * scale
    x_embed = torch.arange(1, width + 1, device=device, dtype=dtype) / (width + eps) * scale
    dim_t = torch.arange(num_pos_feats, device=device, dtype=dtype)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_y = y_embed[:, None] / dim_t  # (H, F)
    pos_x = x_embed[:, None] / dim_t  # (W, F)
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    return torch.cat(
        (
            pos_y.t()[:, :, None].expand(num_pos_feats, height, width),
            pos_x.t()[:, None, :].expand(num_pos_feats, height, width),
        ),
        dim=0,
    )
