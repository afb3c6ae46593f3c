"""Hungarian matching of Mask2Former's queries to ground-truth masks.

Mask2Former (Cheng et al., CVPR 2022, arXiv 2112.01527, sec. 3 and appendix; reference
``mask2former/modeling/matcher.py``) assigns each target to one query by minimising, per image,

    C[q, n] = w_class * (-p_q(c_n)) + w_mask * BCE(m_q, t_n) + w_dice * Dice(m_q, t_n)

with p_q the softmax class probabilities (the "no object" class included), and BCE / dice taken
over the same P uniformly sampled points for every prediction and target. Unmatched queries are
supervised as "no object" by the set criterion. The assignment is
``scipy.optimize.linear_sum_assignment``.
"""

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..registry import MODELS
from .mask_losses import pairwise_dice_cost, pairwise_sigmoid_bce_cost
from .point_sampling import point_sample


def min_cost_assignment(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-cost one-to-one assignment of a (Q, N) cost matrix.

    Returns (query_idx, target_idx), int64 CPU tensors of length min(Q, N), sorted by query.
    NaN and +-inf costs are replaced by the largest finite float, so a broken prediction or
    target is matched only when nothing else is left (training carries on; the loss shows it).
    """
    cost = cost.detach().float().cpu()
    big = torch.finfo(cost.dtype).max
    cost = torch.nan_to_num(cost, nan=big, posinf=big, neginf=big)
    query_idx, target_idx = linear_sum_assignment(cost.numpy())
    return (
        torch.as_tensor(np.asarray(query_idx), dtype=torch.int64),
        torch.as_tensor(np.asarray(target_idx), dtype=torch.int64),
    )


def matching_cost(
    class_logits: Tensor,
    mask_logits: Tensor,
    labels: Tensor,
    masks: Tensor,
    coords: Tensor,
    cost_class: float = 2.0,
    cost_mask: float = 5.0,
    cost_dice: float = 5.0,
) -> Tensor:
    """(Q, N) matching cost of one image's queries against its N targets.

    Args:
        class_logits: (Q, K + 1) class logits, the last class "no object".
        mask_logits: (Q, h, w) mask logits.
        labels: (N,) int64 target classes in [0, K).
        masks: (N, H, W) bool or {0, 1} target masks; (H, W) may differ from (h, w).
        coords: (P, 2) point coordinates (x, y) in [0, 1] shared by predictions and targets.
        cost_class, cost_mask, cost_dice: weights of the three terms.

    Computed in at least float32 (as the reference, which leaves autocast for the matcher).
    """
    dtype = torch.promote_types(mask_logits.dtype, torch.float32)
    probs = class_logits.to(dtype).softmax(-1)
    class_cost = -probs[:, labels]  # -p(target class); the reference drops the constant 1
    coords = coords.to(dtype)
    pred_points = point_sample(mask_logits[None].to(dtype), coords[None])[0]  # (Q, P)
    target_points = point_sample(masks[None].to(coords.device, dtype), coords[None])[0]  # (N, P)
    mask_cost = pairwise_sigmoid_bce_cost(pred_points, target_points)
    dice_cost = pairwise_dice_cost(pred_points, target_points)
    return cost_class * class_cost + cost_mask * mask_cost + cost_dice * dice_cost


@MODELS.register_module()
class HungarianMatcher:
    """Per-image Hungarian matching of queries to targets on class + mask BCE + dice costs.

    Args:
        cost_class: weight of ``-softmax prob of the target class``.
        cost_mask: weight of the point-averaged sigmoid BCE.
        cost_dice: weight of the point dice loss.
        num_points: P uniform points per image shared by all predictions and targets
            (12544 = 112^2, Mask2Former's default).

    Raises:
        ValueError: if all three weights are 0 or ``num_points < 1``.
    """

    def __init__(
        self,
        cost_class: float = 2.0,
        cost_mask: float = 5.0,
        cost_dice: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher needs at least one non-zero cost weight")
        if num_points < 1:
            raise ValueError(f"num_points must be >= 1, got {num_points}")
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points

    @torch.no_grad()
    def __call__(
        self,
        pred_logits: Tensor,
        pred_masks: Tensor,
        targets: list[dict[str, Tensor]],
        generator: torch.Generator | None = None,
    ) -> list[tuple[Tensor, Tensor]]:
        """Match a batch.

        Args:
            pred_logits: (B, Q, K + 1) class logits.
            pred_masks: (B, Q, h, w) mask logits.
            targets: B dicts with ``labels`` (N,) int64 and ``masks`` (N, H, W) bool.
            generator: source of the uniform points (one (1, P, 2) draw per image with targets,
                in batch order); it must live on the device of ``pred_masks``. The global
                generator if None.

        Returns:
            B pairs (query_idx, target_idx) of int64 CPU tensors of length min(Q, N): query
            ``query_idx[i]`` predicts target ``target_idx[i]``. An image without targets gives
            two empty tensors and draws no points.
        """
        if len(targets) != pred_logits.shape[0]:
            raise ValueError(f"{len(targets)} targets for a batch of {pred_logits.shape[0]}")
        indices = []
        for class_logits, mask_logits, target in zip(pred_logits, pred_masks, targets, strict=True):
            if target["labels"].numel() == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty.clone()))
                continue
            coords = torch.rand(
                1, self.num_points, 2, generator=generator, device=mask_logits.device
            )[0]
            cost = matching_cost(
                class_logits,
                mask_logits,
                target["labels"],
                target["masks"],
                coords,
                self.cost_class,
                self.cost_mask,
                self.cost_dice,
            )
            indices.append(min_cost_assignment(cost))
        return indices
