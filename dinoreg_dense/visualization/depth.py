"""Depth maps as pictures: a colour map with a key in metres, next to the photo."""

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from torch import Tensor

from ._figure import render_panels
from .overlay import _as_numpy

DEPTH_CMAP = "magma_r"
"""Near is bright, far is dark; pixels without a measurement are grey (``NO_DEPTH_RGB``)."""
NO_DEPTH_RGB = (128, 128, 128)
KEY_STEPS = 5


def colorize_depth(
    depth: np.ndarray | Tensor, min_depth: float, max_depth: float, cmap: str = DEPTH_CMAP
) -> np.ndarray:
    """(H, W) depth in metres -> (H, W, 3) uint8 RGB, ``min_depth``..``max_depth`` over the colour
    map; 0 (no measurement) and non-finite values are grey, a colour the map does not use."""
    depth = _as_numpy(depth).astype(np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.clip(
        (np.where(valid, depth, min_depth) - min_depth) / (max_depth - min_depth), 0, 1
    )
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)
    rgb[~valid] = NO_DEPTH_RGB
    return rgb


def save_depth_comparison(
    path: str | Path,
    image: np.ndarray | Tensor,
    pred: np.ndarray | Tensor,
    min_depth: float,
    max_depth: float,
    gt: np.ndarray | Tensor | None = None,
    unit: str = "m",
) -> None:
    """Write image | predicted depth | ground-truth depth (if given) as one PNG, with a key of
    ``KEY_STEPS`` depths in metres (``unit``; empty for relative values) below the panels.

    Args:
        path: PNG file; missing folders are created.
        image: (H, W, 3) uint8 RGB.
        pred, gt: (H, W) depth in metres (0 in ``gt``: no measurement).
        min_depth, max_depth: range of the colour map, metres.
    """
    panels = [_as_numpy(image).astype(np.uint8), colorize_depth(pred, min_depth, max_depth)]
    titles = ["image", "prediction"]
    if gt is not None:
        panels.append(colorize_depth(gt, min_depth, max_depth))
        titles.append("ground truth")
    steps = np.linspace(min_depth, max_depth, KEY_STEPS)
    colours = colorize_depth(steps[None], min_depth, max_depth)[0]
    legend = [
        (f"{d:.1f} {unit}".rstrip(), colour) for d, colour in zip(steps, colours, strict=True)
    ]
    render_panels(path, panels, titles, legend=legend)
