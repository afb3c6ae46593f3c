"""Boxes: intersection over union, in the pixel convention the discovery boxes use."""

import torch
from torch import Tensor


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise intersection over union of axis-aligned boxes.

    Boxes are ``(x0, y0, x1, y1)`` in pixels with exclusive ends: a box covers
    ``x0 <= x < x1``, so its area is ``(x1 - x0) * (y1 - y0)`` with no ``+ 1``. This is the
    convention of :func:`torchvision.ops.box_iou` and of LOST's ``bbox_iou`` (``datasets.py``),
    which also turns VOC's 1-based inclusive annotations ``(xmin, ymin, xmax, ymax)`` into
    ``(xmin - 1, ymin - 1, xmax, ymax)``; ground truth must be converted the same way before it
    is compared with the boxes of :func:`~dinoreg_dense.discovery.lost` and
    :func:`~dinoreg_dense.discovery.tokencut`. COCO ``[x, y, w, h]`` becomes
    ``[x, y, x + w, y + h]``.

    Args:
        boxes_a: (N, 4).
        boxes_b: (M, 4).

    Returns:
        (N, M) float32 (float64 if either input is float64) in [0, 1]. A pair whose union is
        empty (two degenerate boxes) has IoU 0, not NaN.

    Raises:
        ValueError: an input is not of shape (K, 4).
    """
    for name, boxes in (("boxes_a", boxes_a), ("boxes_b", boxes_b)):
        if boxes.ndim != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"{name} must have shape (K, 4), got {tuple(boxes.shape)}")
    dtype = torch.promote_types(torch.promote_types(boxes_a.dtype, boxes_b.dtype), torch.float32)
    a, b = boxes_a.to(dtype), boxes_b.to(dtype)
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(dtype).tiny), 0.0)
