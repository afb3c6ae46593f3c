"""Colour label maps, blend them over images and save image | prediction | ground truth."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from ..structures import IGNORE_INDEX
from ._figure import render_panels
from .legend import fit_legend, present_classes

Palette = Sequence[Sequence[int]] | np.ndarray


def _as_numpy(array: np.ndarray | Tensor) -> np.ndarray:
    if isinstance(array, Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _check_palette(palette: Palette) -> np.ndarray:
    if palette is None:
        raise ValueError("a palette of (K, 3) RGB colours is needed, e.g. dataset_meta['palette']")
    colours = np.asarray(palette)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3) RGB colours, got shape {colours.shape}")
    if colours.size and (colours.min() < 0 or colours.max() > 255):
        raise ValueError("palette colours must lie in [0, 255]")
    return colours.astype(np.uint8)


def _check_image(image: np.ndarray | Tensor, shape: tuple[int, ...]) -> np.ndarray:
    image = _as_numpy(image)
    if image.shape != (*shape, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"image must be ({shape[0]}, {shape[1]}, 3) uint8 to match the labels, got "
            f"{image.shape} {image.dtype}"
        )
    return image


def colorize_labels(
    labels: np.ndarray | Tensor, palette: Palette, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Paint each class with its palette colour.

    Args:
        labels: (H, W) integer class indices in ``[0, K)`` or ``ignore_index``.
        palette: (K, 3) RGB colours in [0, 255], one per class.
        ignore_index: label drawn black.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    labels = _as_numpy(labels)
    colours = _check_palette(palette)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an (H, W) integer map, got {labels.shape} {labels.dtype}")
    ignored = labels == ignore_index
    classes = labels[~ignored]
    if classes.size and (classes.min() < 0 or classes.max() >= len(colours)):
        raise ValueError(
            f"labels hold classes in [{classes.min()}, {classes.max()}] but the palette has "
            f"{len(colours)} colours"
        )
    # Row K of the lookup table is the black used for ignored pixels.
    lookup = np.concatenate([colours, np.zeros((1, 3), np.uint8)])
    return lookup[np.where(ignored, len(colours), labels)]


def overlay_segmentation(
    image: np.ndarray | Tensor,
    labels: np.ndarray | Tensor,
    palette: Palette,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> np.ndarray:
    """Blend class colours over an image; ignored pixels keep the image unchanged.

    Args:
        image: (H, W, 3) uint8 RGB image.
        labels: (H, W) integer class indices in ``[0, K)`` or ``ignore_index``.
        palette: (K, 3) RGB colours in [0, 255].
        alpha: weight of the class colour, in [0, 1].
        ignore_index: label left uncoloured.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colours = colorize_labels(labels, palette, ignore_index).astype(np.float32)
    image = _check_image(image, colours.shape[:2])
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    labelled = (_as_numpy(labels) != ignore_index)[..., None]
    return np.where(labelled, np.rint(blended), image).astype(np.uint8)


def save_comparison(
    path: str | Path,
    image: np.ndarray | Tensor,
    pred: np.ndarray | Tensor,
    gt: np.ndarray | Tensor | None = None,
    *,
    palette: Palette,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.5,
    ignore_index: int = IGNORE_INDEX,
) -> None:
    """Write one PNG: image | prediction overlay | ground-truth overlay, with a class legend.

    Panels are drawn at the image's resolution, so the file is ``3 * W`` pixels wide (``2 * W``
    without ``gt``). The legend below lists the classes present in the prediction or the
    ground truth, most pixels first; it is at most as tall as the panels (or
    ``MIN_LEGEND_HEIGHT_PX``, for small images), so when more classes are present, the last
    entry says how many were left out (``"+N more"``).

    Args:
        path: PNG file to write.
        image: (H, W, 3) uint8 RGB image.
        pred: (H, W) integer predicted classes.
        gt: (H, W) integer ground truth with ``ignore_index`` for unlabelled pixels, or None.
        palette: (K, 3) RGB colours in [0, 255].
        class_names: K names for the legend; class indices are shown without them.
        alpha: weight of the class colour in the overlays.
        ignore_index: label left uncoloured and out of the legend.
    """
    colours = _check_palette(palette)
    if class_names is not None and len(class_names) != len(colours):
        raise ValueError(f"got {len(class_names)} class names for {len(colours)} colours")
    image = _as_numpy(image)
    maps = [_as_numpy(pred)] + ([] if gt is None else [_as_numpy(gt)])
    panels = [_check_image(image, maps[0].shape)]
    panels += [overlay_segmentation(image, labels, colours, alpha, ignore_index) for labels in maps]
    titles = ["image", "prediction", "ground truth"][: len(panels)]

    names = class_names if class_names is not None else [str(k) for k in range(len(colours))]
    legend = [(names[k], colours[k]) for k, _ in present_classes(maps, ignore_index)]
    height, width = maps[0].shape
    render_panels(path, panels, titles, fit_legend(legend, width * len(panels), height))
