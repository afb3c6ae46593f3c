"""Pictures of instance predictions: masks blended over the image, boxes, class names and scores."""

import colorsys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from torch import Tensor

from ._figure import render_panels
from .legend import fit_legend
from .overlay import Palette, _as_numpy, _check_image, _check_palette

DEFAULT_SCORE_THRESHOLD = 0.3
"""Instances scoring below this are left out of pictures (never out of the saved results);
Mask2Former keeps its ``top_k`` (query, class) pairs, most of which score near 0."""


def default_palette(num_classes: int) -> np.ndarray:
    """(K, 3) uint8 RGB colours evenly spaced in hue, for datasets without a ``palette``."""
    hues = (np.arange(num_classes) * 0.618034) % 1.0  # golden-ratio steps keep neighbours apart
    return np.array(
        [[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 0.95)] for h in hues], np.uint8
    ).reshape(num_classes, 3)


def draw_instances(
    image: np.ndarray | Tensor,
    masks: np.ndarray | Tensor,
    bboxes: np.ndarray | Tensor,
    labels: np.ndarray | Tensor,
    scores: np.ndarray | Tensor,
    *,
    palette: Palette,
    class_names: Sequence[str] | None = None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend each instance's mask in its class colour, outline its box, write "name 0.87".

    Instances are drawn from the lowest score to the highest, so the best lie on top.

    Args:
        image: (H, W, 3) uint8 RGB.
        masks: (N, H, W) bool.
        bboxes: (N, 4) pixel ``x0, y0, x1, y1`` (end exclusive).
        labels: (N,) int classes in ``[0, K)``.
        scores: (N,) confidences in [0, 1].
        palette: (K, 3) RGB colours in [0, 255].
        class_names: K names; class indices are written without them.
        score_threshold: instances scoring below it are not drawn.
        alpha: weight of the mask colour, in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB picture.
    """
    colours = _check_palette(palette)
    masks = _as_numpy(masks).astype(bool)
    picture = _check_image(image, masks.shape[1:] if masks.ndim == 3 else ()).copy()
    bboxes, labels, scores = map(_as_numpy, (bboxes, labels, scores))
    for index in np.argsort(scores, kind="stable"):
        if scores[index] < score_threshold:
            continue
        label = int(labels[index])
        colour = colours[label].astype(np.float32)
        mask = masks[index]
        picture[mask] = np.rint((1 - alpha) * picture[mask] + alpha * colour).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(float(v))) for v in bboxes[index])
        rgb = tuple(int(c) for c in colours[label])
        cv2.rectangle(picture, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), rgb, 1)
        name = class_names[label] if class_names is not None else str(label)
        cv2.putText(
            picture,
            f"{name} {scores[index]:.2f}",
            (x0 + 1, max(y0 - 2, 8)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.3,
            rgb,
            1,
            cv2.LINE_AA,
        )
    return picture


def save_instances(
    path: str | Path,
    image: np.ndarray | Tensor,
    masks: np.ndarray | Tensor,
    bboxes: np.ndarray | Tensor,
    labels: np.ndarray | Tensor,
    scores: np.ndarray | Tensor,
    *,
    palette: Palette | None = None,
    class_names: Sequence[str] | None = None,
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    alpha: float = 0.5,
) -> None:
    """Write one PNG: image | instances (see :func:`draw_instances`), legend of drawn classes.

    Args are those of :func:`draw_instances`; ``palette`` None = :func:`default_palette` of
    ``len(class_names)`` colours (or of ``max(labels) + 1`` without names).
    """
    labels_np = _as_numpy(labels).astype(np.int64)
    if palette is None:
        count = len(class_names) if class_names is not None else int(labels_np.max(initial=-1)) + 1
        palette = default_palette(max(count, 1))
    colours = _check_palette(palette)
    picture = draw_instances(
        image,
        masks,
        bboxes,
        labels_np,
        scores,
        palette=colours,
        class_names=class_names,
        score_threshold=score_threshold,
        alpha=alpha,
    )
    drawn = labels_np[_as_numpy(scores) >= score_threshold]
    names = class_names if class_names is not None else [str(k) for k in range(len(colours))]
    legend = [(names[k], colours[k]) for k in sorted(set(drawn.tolist()))]
    height, width = picture.shape[:2]
    panels = [np.ascontiguousarray(_as_numpy(image)), picture]
    render_panels(path, panels, ["image", "instances"], fit_legend(legend, 2 * width, height))
