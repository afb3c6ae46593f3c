"""Pictures of predictions and features: label overlays, coloured depth, PCA of patch maps."""

from .depth import colorize_depth, save_depth_comparison
from .instances import draw_instances, save_instances
from .overlay import colorize_labels, overlay_segmentation, save_comparison
from .pca import pca_rgb, principal_projections, save_feature_pca

__all__ = [
    "colorize_depth",
    "colorize_labels",
    "draw_instances",
    "overlay_segmentation",
    "pca_rgb",
    "principal_projections",
    "save_comparison",
    "save_depth_comparison",
    "save_feature_pca",
    "save_instances",
]
