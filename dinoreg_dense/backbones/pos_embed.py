"""Resampling of learned absolute position embeddings to another patch grid."""

import torch
import torch.nn.functional as F
from torch import Tensor

from .pos_embed_export import separable_bicubic


def is_exporting() -> bool:
    """Whether the model is being traced for export (``torch.export`` / the ONNX exporters)."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


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

    While exporting, the same resampling runs as two matrix products
    (:func:`~.pos_embed_export.separable_bicubic`), which export for a destination grid that
    depends on the input size; eager runs keep ``F.interpolate``.
    """
    dim = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, src_grid[0], src_grid[1], dim).permute(0, 3, 1, 2).float()
    if is_exporting():
        resampled = separable_bicubic(grid, dst_grid, antialias, offset)
        if offset:
            # An unchanged grid keeps the table (below); a scale factor would still move it.
            # At offset 0 the resampling of an unchanged grid is the identity.
            same = (grid.new_full((), dst_grid[0]) == src_grid[0]) & (
                grid.new_full((), dst_grid[1]) == src_grid[1]
            )
            resampled = torch.where(same, separable_bicubic(grid, dst_grid, antialias), resampled)
        return resampled.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    if offset:
        scale = ((dst_grid[0] + offset) / src_grid[0], (dst_grid[1] + offset) / src_grid[1])
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        grid = F.interpolate(grid, size=dst_grid, mode="bicubic", antialias=antialias)
    if tuple(grid.shape[-2:]) != tuple(dst_grid):
        raise RuntimeError(f"resampled grid {tuple(grid.shape[-2:])} != requested {dst_grid}")
    return grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
