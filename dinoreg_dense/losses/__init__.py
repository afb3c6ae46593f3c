"""Losses for the dense heads."""

from .cross_entropy import CrossEntropyLoss
from .depth import GradientLoss, SigLoss, log_depth_difference, valid_depth_mask
from .upsampled_cross_entropy import (
    fused_path_is_faster,
    interpolated_cross_entropy,
    linear_interp_matrix,
    upsampled_cross_entropy,
)

__all__ = [
    "CrossEntropyLoss",
    "GradientLoss",
    "SigLoss",
    "fused_path_is_faster",
    "interpolated_cross_entropy",
    "linear_interp_matrix",
    "log_depth_difference",
    "upsampled_cross_entropy",
    "valid_depth_mask",
]
