"""Pictures of a :class:`~dinoreg_dense.visualization.artifacts.FeatureAnalysis`: norm
histograms per layer, the outlier-token map, cls and register attention over the image."""

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from ._figure import render_panels
from .artifacts import FeatureAnalysis, grid_to_image
from .pca import save_feature_pca

OUTLIER_COLOUR = np.array([255, 0, 0], dtype=np.float32)
OUTLIER_OPACITY = 0.6
ATTENTION_COLUMNS = 4
"""Panels per row of the attention pictures (a ViT-L has 16 heads)."""


def heatmap(values: Tensor, colormap: str = "inferno") -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 colours, min-max scaled (a constant map is the
    colormap's lowest colour)."""
    values = values.detach().float().cpu()
    low, span = values.min(), values.max() - values.min()
    scaled = (values - low) / span if span > 0 else torch.zeros_like(values)
    rgb = colormaps[colormap](scaled.numpy())[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def save_norm_histograms(path: str | Path, analysis: FeatureAnalysis, bins: int = 50) -> None:
    """One small histogram of the patch-token norms per layer (log-scale counts), each with its
    outlier threshold as a dashed red line; 4 layers per row."""
    norms = analysis.norms.flatten(1).cpu().numpy()
    columns = min(4, len(norms))
    rows = math.ceil(len(norms) / columns)
    figure = Figure(figsize=(3 * columns, 2.2 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, block, values, threshold in zip(
        axes, analysis.indices, norms, analysis.layer_thresholds, strict=False
    ):
        ax.hist(values, bins=bins, color="tab:blue", log=True)
        ax.axvline(threshold, color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"block {block}: {int((values > threshold).sum())} above", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(norms) :]:
        ax.set_axis_off()
    figure.supxlabel("patch-token L2 norm", fontsize=9)
    figure.supylabel("tokens (log)", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def save_outlier_map(path: str | Path, image: np.ndarray, analysis: FeatureAnalysis) -> None:
    """Three panels: the image, the last layer's norm map, the image with outlier tokens in
    red (their count in the title)."""
    size = image.shape[:2]
    norm_map = grid_to_image(analysis.norms[-1], analysis.patch_size, size)
    mask = grid_to_image(analysis.outliers.mask, analysis.patch_size, size).cpu().numpy()
    marked = image.astype(np.float32)
    marked[mask] = (1 - OUTLIER_OPACITY) * marked[mask] + OUTLIER_OPACITY * OUTLIER_COLOUR
    outliers = analysis.outliers
    render_panels(
        path,
        [image, heatmap(norm_map, "viridis"), marked.round().astype(np.uint8)],
        [
            "image",
            f"norms, block {analysis.indices[-1]} (max {float(analysis.norms[-1].max()):.1f})",
            f"{outliers.count} tokens > {outliers.threshold:.1f}",
        ],
    )


def save_attention_maps(
    path: str | Path, image: np.ndarray, maps: Tensor, titles: list[str], patch_size: int
) -> None:
    """The image, then each (h, w) attention map as a heat map over it, 4 panels a row.

    Args:
        maps: (K, h, w) attention on the patch grid.
        titles: K titles.
    """
    pixels = grid_to_image(maps, patch_size, image.shape[:2])
    panels = [image, *(heatmap(m) for m in pixels)]
    render_panels(path, panels, ["image", *titles], columns=ATTENTION_COLUMNS + 1)


def save_register_heads(
    path: str | Path, image: np.ndarray, register_attention: Tensor, patch_size: int
) -> None:
    """One row per register: the image, then that register's attention in each head.

    Args:
        register_attention: (R, heads, h, w) attention on the patch grid.
    """
    pixels = grid_to_image(register_attention, patch_size, image.shape[:2])
    num_registers, num_heads = pixels.shape[:2]
    panels, titles = [], []
    for register in range(num_registers):
        panels += [image, *(heatmap(m) for m in pixels[register])]
        titles += ["image", *(f"register {register}, head {h}" for h in range(num_heads))]
    render_panels(path, panels, titles, columns=num_heads + 1)


def save_analysis_pictures(
    out_dir: str | Path, name: str, image: np.ndarray, analysis: FeatureAnalysis
) -> list[Path]:
    """Write every picture of one image into ``out_dir`` and return their paths.

    Files: ``{name}_norms.png``, ``{name}_outliers.png``, ``{name}_pca.png``,
    ``{name}_cls_attention.png`` (with a cls token), ``{name}_registers.png`` (mean over heads)
    and ``{name}_registers_per_head.png`` (with registers).

    Args:
        image: (H, W, 3) uint8, the image the backbone saw, before padding.
    """
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"{name}_{kind}.png" for kind in ("norms", "outliers", "pca")}
    save_norm_histograms(paths["norms"], analysis)
    save_outlier_map(paths["outliers"], image, analysis)
    block = analysis.indices[-1]
    save_feature_pca(paths["pca"], image, [analysis.last_patch_map], [f"PCA, block {block}"])
    p = analysis.patch_size
    if analysis.cls_attention is not None:
        heads = analysis.cls_attention
        paths["cls_attention"] = out_dir / f"{name}_cls_attention.png"
        titles = [f"cls, head {h}" for h in range(len(heads))] + ["cls, mean of heads"]
        maps = torch.cat([heads, heads.mean(0, keepdim=True)])
        save_attention_maps(paths["cls_attention"], image, maps, titles, p)
    registers = analysis.register_attention
    if len(registers):
        paths["registers"] = out_dir / f"{name}_registers.png"
        titles = [f"register {r}, mean of heads" for r in range(len(registers))]
        save_attention_maps(paths["registers"], image, registers.mean(1), titles, p)
        paths["registers_per_head"] = out_dir / f"{name}_registers_per_head.png"
        save_register_heads(paths["registers_per_head"], image, registers, p)
    return list(paths.values())
