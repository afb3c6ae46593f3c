"""Losses for the dense heads."""

from .cross_entropy import CrossEntropyLoss
from .depth import GradientLoss, SigLoss, log_depth_difference, valid_depth_mask
from .hungarian_matcher import HungarianMatcher, matching_cost, min_cost_assignment
from .mask_losses import (
    dice_loss,
    pairwise_dice_cost,
    pairwise_sigmoid_bce_cost,
    sigmoid_bce_loss,
)
from .point_sampling import mask_uncertainty, point_sample, sample_uncertain_points
from .set_criterion import SetCriterion, average_num_masks
from .upsampled_cross_entropy import (
    fused_path_is_faster,
    interpolated_cross_entropy,
    linear_interp_matrix,
    upsampled_cross_entropy,
)

__all__ = [
    "CrossEntropyLoss",
    "GradientLoss",
    "HungarianMatcher",
    "SetCriterion",
    "SigLoss",
    "average_num_masks",
    "dice_loss",
    "fused_path_is_faster",
    "interpolated_cross_entropy",
    "linear_interp_matrix",
    "log_depth_difference",
    "mask_uncertainty",
    "matching_cost",
    "min_cost_assignment",
    "pairwise_dice_cost",
    "pairwise_sigmoid_bce_cost",
    "point_sample",
    "sample_uncertain_points",
    "sigmoid_bce_loss",
    "upsampled_cross_entropy",
    "valid_depth_mask",
]
