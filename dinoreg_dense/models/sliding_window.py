"""Whole-image and sliding-window dense inference, independent of the task."""

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

EncodeFn = Callable[[Tensor], Tensor]


def window_origins(length: int, crop: int, stride: int) -> list[int]:
    """Start offsets of windows of size ``crop`` covering ``length`` with the given stride;
    the last window is shifted back so it ends at the border (mmseg / DINOv2 convention)."""
    if length <= crop:
        return [0]
    count = (length - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, length - crop) for i in range(count)})


def slide_inference(
    encode: EncodeFn,
    inputs: Tensor,
    num_channels: int,
    crop_size: Sequence[int],
    stride: Sequence[int],
    batch_size: int = 8,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """Average ``encode`` over overlapping windows, accumulated at ``output_size``.

    Windows are cut and encoded ``batch_size`` at a time, so memory is bounded by one window
    batch, batch_size x num_channels x crop_h x crop_w floats (8 x 150 x 640^2 x 4 B = 2 GB for
    the ADE20K +ms setting), plus the (B, num_channels) x ``output_size`` result.

    Args:
        encode: maps windows (N, 3, h, w) to dense outputs (N, num_channels, h, w).
        inputs: (B, 3, H, W) normalised images.
        num_channels: channels of ``encode``'s output (classes for segmentation).
        crop_size, stride: (h, w) of the windows and of the steps between them.
        batch_size: windows run through ``encode`` at once.
        output_size: (H', W') of the result, e.g. the original image size when ``inputs`` is a
            rescaled view (multi-scale testing); default (H, W). Each window's output is then
            resampled bilinearly (align_corners=False, as ``F.interpolate``) onto the output
            pixels whose centres fall inside it, instead of building the (B, C, H, W) result at
            the view's size first (3.3 GB for 150 classes at scale 3.0 of a 640 x 960 image).
            Away from window borders this equals interpolating the average; within half an
            input pixel of a window border the window's edge value is used.

    Returns:
        (B, num_channels, H', W') outputs, each pixel the mean over the windows covering it.
    """
    b, _, height, width = inputs.shape
    out_h, out_w = (height, width) if output_size is None else tuple(output_size)
    crop_h, crop_w = min(crop_size[0], height), min(crop_size[1], width)
    boxes = [
        (y, x)
        for y in window_origins(height, crop_h, stride[0])
        for x in window_origins(width, crop_w, stride[1])
    ]
    placements = [
        (_placement(y, crop_h, height, out_h), _placement(x, crop_w, width, out_w))
        for y, x in boxes
    ]
    out = inputs.new_zeros((b, num_channels, out_h, out_w))
    count = inputs.new_zeros((1, 1, out_h, out_w))
    for (rows, _), (cols, _) in placements:
        count[..., rows, cols] += 1
    order = [(k, i) for k in range(len(boxes)) for i in range(b)]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        windows = torch.cat(
            [
                inputs[i : i + 1, :, y : y + crop_h, x : x + crop_w]
                for k, i in chunk
                for y, x in [boxes[k]]
            ]
        )
        encoded = encode(windows)
        for window, (k, i) in zip(encoded, chunk, strict=True):
            (rows, grid_y), (cols, grid_x) = placements[k]
            out[i, :, rows, cols] += _resample(window, grid_y, grid_x)
    return out / count


def _placement(origin: int, crop: int, length: int, out_length: int) -> tuple[slice, Tensor | None]:
    """Output pixels owned by a window at ``origin`` of size ``crop`` on an axis of ``length``
    resampled to ``out_length``: a slice, and their window-local source coordinates (None when
    the axis is not resampled)."""
    if out_length == length:
        return slice(origin, origin + crop), None
    ratio = length / out_length
    centres = (torch.arange(out_length, dtype=torch.float64) + 0.5) * ratio - 0.5
    low = -math.inf if origin == 0 else origin - 0.5
    high = math.inf if origin + crop == length else origin + crop - 0.5
    inside = ((centres >= low) & (centres < high)).nonzero()[:, 0]
    if len(inside) == 0:
        return slice(0, 0), centres[:0]
    first, last = int(inside[0]), int(inside[-1]) + 1
    return slice(first, last), centres[first:last] - origin


def _resample(window: Tensor, grid_y: Tensor | None, grid_x: Tensor | None) -> Tensor:
    """(C, h, w) window output sampled bilinearly at local coordinates (rows, columns)."""
    if grid_y is None and grid_x is None:
        return window
    c, h, w = window.shape
    ys = torch.arange(h, dtype=torch.float64) if grid_y is None else grid_y
    xs = torch.arange(w, dtype=torch.float64) if grid_x is None else grid_x
    # grid_sample's normalised coordinates for align_corners=False; border clamps like interpolate
    norm_y = ((2 * ys + 1) / h - 1).to(window)
    norm_x = ((2 * xs + 1) / w - 1).to(window)
    grid = torch.stack(torch.meshgrid(norm_x, norm_y, indexing="xy"), dim=-1)
    return F.grid_sample(
        window[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False
    )[0]
