"""Pictures of predictions and features: label overlays and PCA colourings of patch maps."""

from .overlay import colorize_labels, overlay_segmentation, save_comparison
from .pca import pca_rgb, principal_projections, save_feature_pca

__all__ = [
    "colorize_labels",
    "overlay_segmentation",
    "pca_rgb",
    "principal_projections",
    "save_comparison",
    "save_feature_pca",
]
