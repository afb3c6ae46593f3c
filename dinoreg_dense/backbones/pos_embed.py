"""Resampling of learned absolute position embeddings to another patch grid."""

import torch.nn.functional as F
from torch import Tensor


def resample_pos_embed(
    pos_embed: Tensor,
    src_grid: tuple[int, int],
    dst_grid: tuple[int, int],
    antialias: bool = True,
    offset: float = 0.0,
) -> Tensor:
    """Bicubically resample patch position embeddings from ``src_grid`` to ``dst_grid``.

    Args:
        pos_embed: (1, src_h * src_w, C) patch position embeddings (no prefix rows).
        src_grid: (rows, cols) the embeddings were trained for.
        dst_grid: (rows, cols) of the input's patch grid.
        antialias: antialiased bicubic (DINOv2 with registers, timm) or plain (DINO, DINOv2).
        offset: DINO / DINOv2 (no registers) compute the scale factor as ``(dst + offset) / src``
            with offset 0.1 to dodge floating-point rounding; 0 resizes to the exact size.

    Returns:
        (1, dst_h * dst_w, C) in the input's dtype; interpolation runs in float32.
    """
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_grid[0], src_grid[1], dim).permute(0, 3, 1, 2).float()
    if offset:
        scale = ((dst_grid[0] + offset) / src_grid[0], (dst_grid[1] + offset) / src_grid[1])
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        grid = F.interpolate(grid, size=dst_grid, mode="bicubic", antialias=antialias)
    if tuple(grid.shape[-2:]) != tuple(dst_grid):
        raise RuntimeError(f"resampled grid {tuple(grid.shape[-2:])} != requested {dst_grid}")
    return grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
