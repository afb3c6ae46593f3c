"""Pictures of object discovery: boxes and seed on the image, the object mask, the score map."""

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps
from torch import Tensor

from ._figure import render_panels

GT_COLOUR = (40, 200, 60)
PRED_COLOUR = (230, 40, 40)
SEED_COLOUR = (255, 220, 0)


def patches_to_pixels(grid: np.ndarray, patch_size: int, image_size: tuple[int, int]) -> np.ndarray:
    """(h, w) patch values -> (H, W), each patch a p x p block; the backbone's padding is cut,
    and pixels past the grid (an input cropped to whole patches) are 0."""
    height, width = image_size
    pixels = np.kron(grid, np.ones((patch_size, patch_size), grid.dtype))[:height, :width]
    out = np.zeros((height, width), grid.dtype)
    out[: pixels.shape[0], : pixels.shape[1]] = pixels
    return out


def draw_box(image: np.ndarray, box: Sequence[float], colour: tuple[int, int, int]) -> None:
    """Draw pixel box ``x0, y0, x1, y1`` (end exclusive) on the (H, W, 3) uint8 image in place."""
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    cv2.rectangle(image, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, thickness=2)


def save_discovery_picture(
    path: str | Path,
    image: np.ndarray,
    box: Sequence[float],
    seed: tuple[int, int],
    mask: Tensor,
    scores: Tensor,
    gt_boxes: Sequence[Sequence[float]],
    patch_size: int,
) -> None:
    """Three panels with a colour key: the image with ground-truth (green) and predicted (red)
    boxes and the seed patch (yellow); the object mask over the image; the score map (viridis,
    min to max).

    Args:
        path: PNG to write.
        image: (H, W, 3) uint8 RGB as stored.
        box: predicted pixel ``x0, y0, x1, y1``.
        seed: (row, col) of the seed patch.
        mask: (h, w) bool patch mask of the object.
        scores: (h, w) float patch scores of the method.
        gt_boxes: (M, 4) ground-truth boxes.
        patch_size: p, pixels per patch side.
    """
    size = image.shape[:2]
    boxes = image.copy()
    for gt in gt_boxes:
        draw_box(boxes, gt, GT_COLOUR)
    draw_box(boxes, box, PRED_COLOUR)
    row, col = seed
    seed_box = (col * patch_size, row * patch_size, (col + 1) * patch_size, (row + 1) * patch_size)
    draw_box(boxes, seed_box, SEED_COLOUR)
    object_pixels = patches_to_pixels(mask.numpy().astype(np.uint8), patch_size, size)[..., None]
    tint = np.array(PRED_COLOUR, np.float32)
    overlay = np.where(object_pixels, 0.5 * image + 0.5 * tint, 0.35 * image).astype(np.uint8)
    values = scores.float().numpy()
    span = float(values.max() - values.min())
    values = (values - values.min()) / span if span > 0 else np.zeros_like(values)
    heat = colormaps["viridis"](patches_to_pixels(values, patch_size, size))[..., :3]
    render_panels(
        path,
        [boxes, overlay, (255 * heat).astype(np.uint8)],
        ["boxes", "object", "scores"],
        legend=[
            ("ground truth", np.array(GT_COLOUR, np.uint8)),
            ("predicted", np.array(PRED_COLOUR, np.uint8)),
            ("seed", np.array(SEED_COLOUR, np.uint8)),
        ],
    )
