"""Losses for the dense heads."""

from .cross_entropy import CrossEntropyLoss
from .upsampled_cross_entropy import (
    fused_path_is_faster,
    interpolated_cross_entropy,
    linear_interp_matrix,
    upsampled_cross_entropy,
)

__all__ = [
    "CrossEntropyLoss",
    "fused_path_is_faster",
    "interpolated_cross_entropy",
    "linear_interp_matrix",
    "upsampled_cross_entropy",
]
