"""Whole-image and sliding-window dense inference, independent of the task."""

from collections.abc import Callable, Sequence

import torch
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
) -> Tensor:
    """Average ``encode`` over overlapping windows.

    Args:
        encode: maps windows (N, 3, h, w) to dense outputs (N, num_channels, h, w).
        inputs: (B, 3, H, W) normalised images.
        num_channels: channels of ``encode``'s output (classes for segmentation).
        crop_size, stride: (h, w) of the windows and of the steps between them.
        batch_size: windows run through ``encode`` at once.

    Returns:
        (B, num_channels, H, W) outputs, each pixel the mean over the windows covering it.
    """
    b, _, height, width = inputs.shape
    crop_h, crop_w = min(crop_size[0], height), min(crop_size[1], width)
    boxes = [
        (y, x)
        for y in window_origins(height, crop_h, stride[0])
        for x in window_origins(width, crop_w, stride[1])
    ]
    out = inputs.new_zeros((b, num_channels, height, width))
    count = inputs.new_zeros((1, 1, height, width))
    for y, x in boxes:
        count[..., y : y + crop_h, x : x + crop_w] += 1
    windows = torch.cat([inputs[..., y : y + crop_h, x : x + crop_w] for y, x in boxes])
    order = [(k, i) for k in range(len(boxes)) for i in range(b)]
    for start in range(0, windows.shape[0], batch_size):
        chunk = encode(windows[start : start + batch_size])
        for j, (k, i) in enumerate(order[start : start + batch_size]):
            y, x = boxes[k]
            out[i, :, y : y + crop_h, x : x + crop_w] += chunk[j]
    return out / count
