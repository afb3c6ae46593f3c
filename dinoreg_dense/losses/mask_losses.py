"""Sigmoid binary cross-entropy and dice on sampled mask points (Mask2Former's mask losses).

Two forms of each: a loss over matched (prediction, target) pairs, summed over masks and divided
by the number of target masks in the batch (Mask2Former's normalisation, so images with many
objects weigh more), and a pairwise cost matrix for the Hungarian matcher. Logits and labels are
(M, P): M masks sampled at the same P points; labels are in [0, 1] (bilinearly sampled binary
masks). Dice uses +1 smoothing in numerator and denominator (V-Net, Milletari et al. 2016, as in
Mask2Former's ``dice_loss``), so two empty masks have dice loss 0.
"""

import torch.nn.functional as F
from torch import Tensor


def sigmoid_bce_loss(point_logits: Tensor, point_labels: Tensor, num_masks: float) -> Tensor:
    """Scalar: per-mask mean BCE-with-logits over the P points, summed over M, / ``num_masks``.

    ``point_logits``, ``point_labels``: (M, P). Natural-log units (nats).
    """
    bce = F.binary_cross_entropy_with_logits(point_logits, point_labels, reduction="none")
    return bce.mean(1).sum() / num_masks


def dice_loss(point_logits: Tensor, point_labels: Tensor, num_masks: float) -> Tensor:
    """Scalar: ``sum_m 1 - (2 p.y + 1) / (sum p + sum y + 1)`` / ``num_masks``, p = sigmoid.

    ``point_logits``, ``point_labels``: (M, P). Each term is in [0, 1).
    """
    probs = point_logits.sigmoid()
    numerator = 2 * (probs * point_labels).sum(1)
    denominator = probs.sum(1) + point_labels.sum(1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def pairwise_sigmoid_bce_cost(point_logits: Tensor, point_labels: Tensor) -> Tensor:
    """(Q, N) mean BCE-with-logits over P points of every prediction (Q, P) vs target (N, P).

    Uses ``BCE(x, y) = y * softplus(-x) + (1 - y) * softplus(x)``, linear in y, so the whole
    matrix is two (Q, P) x (P, N) products instead of a (Q, N, P) tensor.
    """
    num_points = point_logits.shape[1]
    positive = F.softplus(-point_logits) / num_points  # BCE against label 1
    negative = F.softplus(point_logits) / num_points  # BCE against label 0
    return positive @ point_labels.T + negative @ (1 - point_labels).T


def pairwise_dice_cost(point_logits: Tensor, point_labels: Tensor) -> Tensor:
    """(Q, N) dice loss (+1 smoothed) of every prediction (Q, P) against every target (N, P)."""
    probs = point_logits.sigmoid()
    numerator = 2 * probs @ point_labels.T
    denominator = probs.sum(1)[:, None] + point_labels.sum(1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)
