"""Point sampling of mask logits, as in PointRend and Mask2Former's training losses.

Mask2Former (Cheng et al., CVPR 2022, arXiv 2112.01527, sec. 4 "Improving training
efficiency") computes its mask losses on K sampled points instead of every pixel: uniform points
for the matching cost, and importance-sampled points for the final loss (PointRend, Kirillov et
al., CVPR 2020, sec. 3.1: oversample k*N uniform points, keep the beta*N most uncertain, fill the
rest uniformly). Coordinates are normalised (x, y) in [0, 1]^2 over the whole map, so a prediction
at stride 4 and a target at input resolution are sampled at the same image locations.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def point_sample(features: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly sample ``features`` (B, C, H, W) at ``coords`` (B, P, 2) -> (B, C, P).

    ``coords`` are (x, y) in [0, 1], with (0, 0) the top-left corner of the top-left pixel and
    (1, 1) the bottom-right corner of the bottom-right pixel (``grid_sample`` with
    ``align_corners=False``, as detectron2's ``point_sample``): pixel (i, j) has its centre at
    ((j + 0.5) / W, (i + 0.5) / H). Points outside the pixel centres' hull blend with zero
    padding, as in the reference. Boolean or integer features are sampled as ``coords.dtype``;
    float features keep their dtype (``coords`` follow it).
    """
    if features.is_floating_point():
        coords = coords.to(features.dtype)
    else:
        features = features.to(coords.dtype)
    grid = (2.0 * coords - 1.0).unsqueeze(2)  # (B, P, 1, 2) in grid_sample's [-1, 1]
    return F.grid_sample(features, grid, mode="bilinear", align_corners=False).squeeze(3)


def mask_uncertainty(mask_logits: Tensor) -> Tensor:
    """Uncertainty of class-agnostic mask logits (any shape): ``-|logit|``, highest at 0."""
    return -mask_logits.abs()


def sample_uncertain_points(
    mask_logits: Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_sample_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Importance-sampled float32 coordinates (R, num_points, 2) in [0, 1] for (R, 1, h, w) logits.

    Draws ``int(num_points * oversample_ratio)`` uniform points per mask, keeps the
    ``int(importance_sample_ratio * num_points)`` with the highest :func:`mask_uncertainty` of the
    bilinearly sampled logit, and appends uniform points up to ``num_points`` (detectron2's
    ``get_uncertain_point_coords_with_randomness``). Random numbers come from ``generator`` (the
    global generator if None; else it must live on the device of ``mask_logits``): the
    oversampled points first, then the uniform remainder. Not differentiable: call under
    ``torch.no_grad``.

    Raises:
        ValueError: if ``oversample_ratio < 1`` or ``importance_sample_ratio`` is not in [0, 1].
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError(
            f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}"
        )
    num_masks, device = mask_logits.shape[0], mask_logits.device
    num_sampled = int(num_points * oversample_ratio)
    candidates = torch.rand(num_masks, num_sampled, 2, generator=generator, device=device)
    logits = mask_logits.to(torch.promote_types(mask_logits.dtype, torch.float32))
    uncertainty = mask_uncertainty(point_sample(logits, candidates))[:, 0]
    num_uncertain = int(importance_sample_ratio * num_points)
    top = uncertainty.topk(num_uncertain, dim=1).indices  # (R, num_uncertain)
    coords = torch.gather(candidates, 1, top.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        uniform = torch.rand(num_masks, num_random, 2, generator=generator, device=device)
        coords = torch.cat([coords, uniform], dim=1)
    return coords
