"""DINOv3's axial 2D rotary position encoding (RoPE) of patch queries and keys.

Each head's ``head_dim`` channels hold ``head_dim / 4`` frequencies per image axis, rows first,
then columns, the whole repeated twice for the rotate-half layout. A patch's coordinates are its
centre, ``(i + 0.5) / h`` and ``(j + 0.5) / w`` mapped to [-1, 1]: each axis is normalised by
its own length, so the encoding depends on the grid's shape, not on absolute pixel positions.
Prefix tokens (cls, registers) are never rotated. Everything is computed in float32.
"""

import math

import torch
from torch import Tensor


def rope_periods(
    head_dim: int,
    base: float,
    device: torch.device | None = None,
    rounding: str = "float32",
) -> Tensor:
    """(head_dim / 4,) float32 periods ``base ** (4 i / head_dim)``, i = 0 .. head_dim / 4 - 1.

    Args:
        rounding: ``'bfloat16'`` rounds the periods to bfloat16 (the values the official DINOv3
            checkpoints store and compute with); ``'float32'`` keeps them.

    Raises:
        ValueError: ``head_dim`` is not a multiple of 4.
    """
    if head_dim % 4:
        raise ValueError(f"RoPE needs a head dim divisible by 4, got {head_dim}")
    exponents = torch.arange(0, head_dim // 4, dtype=torch.float32, device=device) * 4 / head_dim
    periods = base**exponents
    if rounding == "bfloat16":
        periods = periods.to(torch.bfloat16).float()
    return periods


def patch_coordinates(grid: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """(h * w, 2) float32 (row, column) patch-centre coordinates in [-1, 1], row-major."""
    h, w = grid
    rows = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
    cols = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
    coords = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).flatten(0, 1)
    return 2.0 * coords - 1.0


def rope_cos_sin(coords: Tensor, periods: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 2) coordinates and (head_dim / 4,) periods -> cos, sin, each (N, head_dim) float32.

    Angle ``2 pi coord / period``: row frequencies, then column frequencies, tiled twice.
    """
    angles = 2 * math.pi * coords.float()[:, :, None] / periods.float()[None, None, :]
    angles = angles.flatten(1, 2).tile(2)
    return torch.cos(angles), torch.sin(angles)


def grid_rope(
    grid: tuple[int, int],
    head_dim: int,
    base: float,
    device: torch.device | None = None,
    rounding: str = "float32",
    rescale: float | None = None,
) -> tuple[Tensor, Tensor]:
    """cos, sin, each (h * w, head_dim) float32, for the patches of a (h, w) grid.

    Args:
        rescale: DINOv3's training-time coordinate rescaling (see :func:`rescale_coordinates`);
            ``None`` for none (always in eval).
        rounding: see :func:`rope_periods`.
    """
    coords = patch_coordinates(grid, device)
    if rescale is not None:
        coords = rescale_coordinates(coords, rescale)
    return rope_cos_sin(coords, rope_periods(head_dim, base, device, rounding))


def rescale_coordinates(coords: Tensor, max_scale: float) -> Tensor:
    """(N, 2) -> (N, 2) multiplied by one factor drawn log-uniformly from [1/max_scale, max_scale]
    (DINOv3's training-time box rescaling)."""
    log_range = math.log(max_scale)
    factor = torch.empty(1, device=coords.device).uniform_(-log_range, log_range).exp()
    return coords * factor


def _rotate_half(x: Tensor) -> Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the last N tokens (the patches) of ``x``; the leading prefix tokens stay as they are.

    Args:
        x: (B, heads, T, head_dim) queries or keys, T = prefix + N.
        cos, sin: (N, head_dim) from :func:`rope_cos_sin`.

    Returns:
        (B, heads, T, head_dim) in ``x``'s dtype; the rotation itself runs in float32.
    """
    n = cos.shape[0]
    prefix, patches = x[..., : x.shape[-2] - n, :], x[..., x.shape[-2] - n :, :].float()
    rotated = patches * cos + _rotate_half(patches) * sin
    return torch.cat((prefix, rotated.to(x.dtype)), dim=-2)
