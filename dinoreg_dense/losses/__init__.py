"""Losses for the dense heads."""

from .cross_entropy import CrossEntropyLoss
from .upsampled_cross_entropy import linear_interp_matrix, upsampled_cross_entropy

__all__ = ["CrossEntropyLoss", "linear_interp_matrix", "upsampled_cross_entropy"]
