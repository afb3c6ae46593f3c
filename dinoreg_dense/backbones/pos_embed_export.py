"""Bicubic resampling of a position table as two matrix products, for ONNX export.

``F.interpolate(mode="bicubic", antialias=True)`` has no ONNX form (ONNX ``Resize`` knows an
``antialias`` flag only from opset 18 and onnxruntime does not follow PyTorch's kernel; the
exporters refuse ``_upsample_bicubic2d_aa``), and plain bicubic resizing to a size that depends on
the input exports as a ``Resize`` whose border handling differs from PyTorch's. Bicubic resampling
is separable and linear, so resizing a (C, h, w) grid is ``W_rows @ grid @ W_cols^T`` with one
(dst, src) weight matrix per axis. This module builds those matrices from the kernel formula with
plain tensor ops (arange, floor, abs, clamp, where, matmul) that export for any destination size.

The matrices follow PyTorch's CPU kernels (``aten/src/ATen/native/UpSample.h`` and
``UpSampleKernel.cpp``; ``torch/_decomp/decompositions.py`` has the plain kernel in Python), with
``align_corners=False``:

* plain: Keys' cubic convolution with ``a = -0.75``; source position ``scale * (i + 0.5) - 0.5``,
  taps ``floor - 1 .. floor + 2`` clamped to the border (border rows get the weight of the taps
  that fall outside);
* antialiased: PIL's bicubic filter with ``a = -0.5``, support ``2 * max(scale, 1)`` source pixels
  around the centre ``scale * (i + 0.5)``, taps outside the grid dropped and the row of weights
  normalised to sum to one; an axis whose length does not change is copied (PyTorch skips it
  even when a scale factor says otherwise);

with ``scale = src / dst``, or ``src / (dst + 0.1)`` for DINOv2's scale factor
``(dst + 0.1) / src`` (PyTorch samples with the inverse of a given scale factor).
"""

import torch
from torch import Tensor

# Keys' cubic convolution constant of each PyTorch mode.
PLAIN_CUBIC_A = -0.75
ANTIALIAS_CUBIC_A = -0.5


def cubic_kernel(x: Tensor, a: float) -> Tensor:
    """Keys' cubic convolution kernel at distances ``x`` (any shape), zero beyond 2."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _positions_and_step(
    src: int, dst: int, offset: float, device: torch.device | None
) -> tuple[Tensor, Tensor]:
    """(dst,) float32 destination indices 0 .. dst - 1 and the () float32 source step, computed
    as tensors so that ``dst`` may be symbolic. The step is rounded as PyTorch rounds it:
    ``float(src) / dst`` in float32 for a size, ``1 / scale_factor`` in float64 for a scale
    factor ``(dst + offset) / src``."""
    positions = torch.arange(dst, dtype=torch.float32, device=device)
    # Tensor / tensor: ``int / tensor`` is computed as int * (1 / tensor), rounded twice.
    dtype = torch.float64 if offset else torch.float32
    length = positions.new_full((), dst, dtype=dtype) + offset
    return positions, (positions.new_full((), src, dtype=dtype) / length).float()


def plain_bicubic_weights(
    src: int, dst: int, offset: float = 0.0, device: torch.device | None = None
) -> Tensor:
    """(dst, src) float32 weights of ``F.interpolate(mode="bicubic", antialias=False)`` on one axis.

    Args:
        src: source length (fixed).
        dst: destination length (may be symbolic while exporting).
        offset: the source step is ``src / (dst + offset)``: 0 for a resize to a size, DINOv2's
            0.1 for its scale factor ``(dst + 0.1) / src``.
    """
    positions, step = _positions_and_step(src, dst, offset, device)
    real = step * (positions + 0.5) - 0.5
    floor = real.floor()
    frac = (real - floor).clamp(0.0, 1.0)
    columns = torch.arange(src, device=device)
    weights = positions.new_zeros((positions.shape[0], src))
    for tap in range(4):  # taps floor - 1 .. floor + 2, clamped to the border
        index = (floor.long() + tap - 1).clamp(0, src - 1)
        coeff = cubic_kernel(frac.double() - (tap - 1), PLAIN_CUBIC_A).float()
        weights = weights + torch.where(index[:, None] == columns[None, :], coeff[:, None], 0.0)
    return weights


def antialiased_bicubic_weights(
    src: int, dst: int, offset: float = 0.0, device: torch.device | None = None
) -> Tensor:
    """(dst, src) float32 weights of ``F.interpolate(mode="bicubic", antialias=True)`` on one axis.

    Args:
        src: source length (fixed).
        dst: destination length (may be symbolic while exporting).
        offset: the source step is ``src / (dst + offset)``: 0 for a resize to a size, DINOv2's
            0.1 for its scale factor ``(dst + 0.1) / src``.
    """
    positions, step = _positions_and_step(src, dst, offset, device)
    stretch = step.clamp(min=1.0)  # the kernel widens when downsampling, never narrows
    support = 2.0 * stretch
    centre = step * (positions + 0.5)
    first = (centre - support + 0.5).floor().clamp(min=0.0)
    end = (centre + support + 0.5).floor().clamp(max=float(src))
    columns = torch.arange(src, dtype=torch.float32, device=device)
    inside = (columns[None, :] >= first[:, None]) & (columns[None, :] < end[:, None])
    distance = (columns[None, :] - centre[:, None] + 0.5) / stretch
    weights = torch.where(inside, cubic_kernel(distance, ANTIALIAS_CUBIC_A), 0.0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # PyTorch's antialiased kernel skips an axis whose size does not change, whatever the scale.
    same_size = positions.new_full((), dst) == src
    return torch.where(same_size, _identity_like(weights), weights)


def separable_bicubic(
    grid: Tensor, dst_grid: tuple[int, int], antialias: bool, offset: float = 0.0
) -> Tensor:
    """``F.interpolate(grid, mode="bicubic", antialias=antialias)`` as ``W_h @ grid @ W_w^T``.

    Args:
        grid: (B, C, h, w) float32 source grid (fixed size).
        dst_grid: (H, W) destination size; may be symbolic while exporting.
        antialias: PyTorch's antialiased kernel (a = -0.5) or the plain one (a = -0.75).
        offset: 0 for ``F.interpolate(size=dst_grid)``; DINOv2's 0.1 for
            ``F.interpolate(scale_factor=((H + 0.1) / h, (W + 0.1) / w))``.

    Returns:
        (B, C, H, W) float32; equal to ``F.interpolate`` up to float rounding
        (docs/export.md gives the measured difference).
    """
    make = antialiased_bicubic_weights if antialias else plain_bicubic_weights
    src_h, src_w = grid.shape[-2:]
    rows = make(src_h, dst_grid[0], offset, grid.device)
    cols = make(src_w, dst_grid[1], offset, grid.device)
    return rows @ grid @ cols.transpose(0, 1)


def _identity_like(weights: Tensor) -> Tensor:
    """(dst, src) matrix with ones where row index == column index, zeros elsewhere."""
    rows = torch.arange(weights.shape[0], device=weights.device)
    cols = torch.arange(weights.shape[1], device=weights.device)
    return (rows[:, None] == cols[None, :]).to(weights.dtype)
