"""Side-by-side panels at native resolution with titles and an optional colour legend."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

TITLE_HEIGHT_PX = 24
LEGEND_MARGIN_PX = 8
DPI = 100
LEGEND_STYLE = dict(frameon=False, fontsize=9, handlelength=1.5, borderaxespad=0, borderpad=0)


def _legend_layout(handles: Sequence[Patch], max_width: int) -> tuple[int, int]:
    """Most legend columns that fit in ``max_width`` pixels (at least one), and the height.

    Trial legends are measured with the Agg renderer; the width grows with the number of
    columns, so a bisection finds the answer in a few trials.
    """
    probe = Figure(dpi=DPI)
    renderer = FigureCanvasAgg(probe).get_renderer()

    def measure(columns: int) -> tuple[float, float]:
        legend = probe.legend(handles=handles, ncol=columns, **LEGEND_STYLE)
        box = legend.get_window_extent(renderer)
        legend.remove()
        return box.width, box.height

    fits, too_wide = 1, len(handles) + 1
    while too_wide - fits > 1:
        middle = (fits + too_wide) // 2
        if measure(middle)[0] <= max_width:
            fits = middle
        else:
            too_wide = middle
    return fits, math.ceil(measure(fits)[1])


def render_panels(
    path: str | Path,
    panels: Sequence[np.ndarray],
    titles: Sequence[str],
    legend: Sequence[tuple[str, np.ndarray]] = (),
    columns: int | None = None,
) -> None:
    """Write panels left to right (wrapping after ``columns``) into one PNG, one image pixel per
    file pixel.

    The file is ``min(columns, len(panels)) * W`` pixels wide; from top to bottom it holds, for
    each row of panels, a title band of ``TITLE_HEIGHT_PX`` and the H rows of the panels, then
    the legend band (absent without legend).

    Args:
        path: PNG file to write; missing parent folders are created.
        panels: (H, W, 3) uint8 images, all the same size.
        titles: one title per panel.
        legend: (name, (3,) uint8 colour) entries shown as coloured patches below the panels.
        columns: panels per row; None puts all in one row.
    """
    if len(titles) != len(panels):
        raise ValueError(f"got {len(titles)} titles for {len(panels)} panels")
    height, width = panels[0].shape[:2]
    for panel in panels:
        if panel.shape != (height, width, 3) or panel.dtype != np.uint8:
            raise ValueError(
                f"panels must all be ({height}, {width}, 3) uint8, got {panel.shape} {panel.dtype}"
            )
    columns = len(panels) if columns is None else max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    total_width = width * columns
    handles = [
        Patch(facecolor=np.asarray(colour) / 255, edgecolor="black", label=name)
        for name, colour in legend
    ]
    legend_height = 0
    if handles:
        legend_columns, legend_height = _legend_layout(handles, total_width - 2 * LEGEND_MARGIN_PX)
        legend_height += 2 * LEGEND_MARGIN_PX
    row_height = TITLE_HEIGHT_PX + height
    total_height = rows * row_height + legend_height

    figure = Figure(figsize=(total_width / DPI, total_height / DPI), dpi=DPI, facecolor="white")
    for index, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        # figimage pastes pixels unresampled; offsets are in pixels from the bottom left.
        row, column = divmod(index, columns)
        bottom = legend_height + (rows - 1 - row) * row_height
        figure.figimage(panel, xo=column * width, yo=bottom, origin="upper")
        figure.text(
            (column + 0.5) * width / total_width,
            (bottom + height + TITLE_HEIGHT_PX / 2) / total_height,
            title,
            ha="center",
            va="center",
            fontsize=10,
        )
    if handles:
        figure.legend(
            handles=handles,
            loc="center",
            bbox_to_anchor=(0.5, legend_height / 2 / total_height),
            ncol=legend_columns,
            **LEGEND_STYLE,
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
