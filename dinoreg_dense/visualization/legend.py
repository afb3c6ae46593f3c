"""Legends that fit: the classes of a label map, largest first, cut to a height with "+N more"."""

from collections.abc import Sequence

import numpy as np
from matplotlib.patches import Patch

from ..structures import IGNORE_INDEX
from ._figure import LEGEND_MARGIN_PX, _legend_layout

LegendEntry = tuple[str, np.ndarray]
MIN_LEGEND_HEIGHT_PX = 64
"""Height a legend may always take, so small images still show a few classes."""
MORE_COLOUR = np.array([255, 255, 255], np.uint8)
"""Patch colour of the "+N more" entry: blank, it stands for no class."""


def present_classes(
    label_maps: Sequence[np.ndarray], ignore_index: int = IGNORE_INDEX
) -> list[tuple[int, int]]:
    """Classes found in the label maps with their pixel counts, most pixels first.

    Args:
        label_maps: (H, W) integer maps (e.g. a prediction and its ground truth).
        ignore_index: label left out.

    Returns:
        (class index, pixel count) pairs, by decreasing count, then increasing index.
    """
    labels = np.concatenate([np.asarray(labels).ravel() for labels in label_maps])
    classes, counts = np.unique(labels[labels != ignore_index], return_counts=True)
    order = np.lexsort((classes, -counts))
    return [(int(classes[i]), int(counts[i])) for i in order]


def legend_height(entries: Sequence[LegendEntry], width: int) -> int:
    """Pixels of the band that ``render_panels`` draws for ``entries`` in a ``width``-wide file."""
    if not entries:
        return 0
    handles = [
        Patch(facecolor=np.asarray(colour) / 255, edgecolor="black", label=name)
        for name, colour in entries
    ]
    return _legend_layout(handles, width - 2 * LEGEND_MARGIN_PX)[1] + 2 * LEGEND_MARGIN_PX


def fit_legend(entries: Sequence[LegendEntry], width: int, max_height: int) -> list[LegendEntry]:
    """The first entries whose legend fits ``max_height``, and ``"+N more"`` for the rest.

    Args:
        entries: (name, (3,) uint8 colour) pairs, most important first.
        width: width of the figure in pixels.
        max_height: tallest legend band allowed, in pixels; raised to
            :data:`MIN_LEGEND_HEIGHT_PX`.

    Returns:
        ``entries`` if they fit; else its first k entries and ``("+N more", MORE_COLOUR)``
        (``N = len(entries) - k``), with the largest k that fits (possibly 0).
    """
    max_height = max(max_height, MIN_LEGEND_HEIGHT_PX)
    entries = list(entries)
    if legend_height(entries, width) <= max_height:
        return entries

    def cut(count: int) -> list[LegendEntry]:
        return entries[:count] + [(f"+{len(entries) - count} more", MORE_COLOUR)]

    # The height grows with the number of entries, so a bisection finds the largest cut.
    fits, too_tall = 0, len(entries)
    while too_tall - fits > 1:
        middle = (fits + too_tall) // 2
        if legend_height(cut(middle), width) <= max_height:
            fits = middle
        else:
            too_tall = middle
    return cut(fits)
