"""Depth losses of DINOv2's depth evaluation: scale-invariant log loss and gradient matching.

Both take metric depth in metres; a ground-truth depth of 0 marks an invalid pixel. Both pool
over every valid pixel of the batch (not per image, then averaged), as DINOv2's
``dinov2/eval/depth/models/losses`` do, and compute in at least float32 even under autocast,
because ``log`` of half-precision depths near ``eps`` loses most of its digits.
"""

import torch
from torch import Tensor, nn

from ..registry import MODELS


def _check_loss_name(loss_name: str) -> None:
    if not loss_name.startswith("loss"):
        raise ValueError(f"loss_name must start with 'loss' to be optimised, got {loss_name}")


def _as_maps(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Squeeze (B, 1, H, W) to (B, H, W) and promote to at least float32.

    Raises:
        ValueError: if the two maps do not have the same (B, H, W) shape.
    """
    if pred.dim() == 4 and pred.shape[1] == 1:
        pred = pred.squeeze(1)
    if target.dim() == 4 and target.shape[1] == 1:
        target = target.squeeze(1)
    if pred.dim() != 3 or pred.shape != target.shape:
        raise ValueError(
            "depth losses take pred (B, 1, H, W) or (B, H, W) and target (B, H, W) of the same "
            f"size; got pred {tuple(pred.shape)} and target {tuple(target.shape)}: resize the "
            "prediction to the ground truth first"
        )
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return pred.to(dtype), target.to(dtype)


def valid_depth_mask(
    target: Tensor, min_depth: float | None = None, max_depth: float | None = None
) -> Tensor:
    """Boolean mask (same shape as ``target``) of pixels with a usable ground truth.

    Valid means ``target > 0``, ``target > min_depth`` if given and ``target <= max_depth`` if
    given (DINOv2 keeps ``gt <= max_depth``).
    """
    valid = target > 0
    if min_depth is not None:
        valid &= target > min_depth
    if max_depth is not None:
        valid &= target <= max_depth
    return valid


def log_depth_difference(pred: Tensor, target: Tensor, valid: Tensor, eps: float) -> Tensor:
    """``log(pred + eps) - log(target + eps)`` where ``valid``, exactly 0 elsewhere.

    Invalid pixels are replaced by 1 before the logarithm, so they get zero gradient even when
    ``eps`` is 0 and the target there is 0. All tensors share one shape.
    """
    one = torch.ones((), dtype=pred.dtype, device=pred.device)
    pred = torch.where(valid, pred, one)
    target = torch.where(valid, target, one)
    return torch.log(pred + eps) - torch.log(target + eps)


@MODELS.register_module()
class SigLoss(nn.Module):
    """Scale-invariant log loss (Eigen et al. 2014), with DINOv2's warm-up.

    With ``g = log(pred + eps) - log(gt + eps)`` over the N valid pixels of the whole batch::

        loss = sqrt(mean(g**2) - scale_invariance * mean(g)**2)
             = sqrt(Var(g) + (1 - scale_invariance) * mean(g)**2)

    where ``Var`` is the biased (1/N) variance; DINOv2 (``sigloss.py``, after AdaBins) uses
    ``torch.var``, which divides by N - 1: a relative difference of 1/N in the variance term,
    nothing for a 480x640 crop. ``scale_invariance = 1`` makes the loss blind to a global scale
    of ``pred`` (up to ``eps``); DINOv2 uses 0.85.

    Warm-up: for the first ``warm_up_iters`` calls made in training mode the loss is only the
    scale term, ``sqrt((1 - scale_invariance) * mean(g)**2)``, as DINOv2's ``warm_up=True``
    (``warm_iter=100``) does, so the head first learns the global depth scale. The count is a
    buffer, saved in checkpoints, so a resumed run does not warm up again.

    Args:
        scale_invariance: lambda above, in [0, 1].
        eps: added to both depths before the logarithm (metres); DINOv2's 1e-3.
        min_depth: ground truth at or below it is ignored (metres); None keeps all ``gt > 0``.
        max_depth: ground truth above it is ignored (metres); None for no bound.
        warm_up_iters: number of training calls that use the warm-up loss; 0 for none.
        loss_weight: multiplies the loss.
        loss_name: key under which the loss is logged; must start with ``loss``.
    """

    def __init__(
        self,
        scale_invariance: float = 0.85,
        eps: float = 1e-3,
        min_depth: float | None = None,
        max_depth: float | None = None,
        warm_up_iters: int = 0,
        loss_weight: float = 1.0,
        loss_name: str = "loss_depth",
    ) -> None:
        super().__init__()
        _check_loss_name(loss_name)
        if not 0.0 <= scale_invariance <= 1.0:
            raise ValueError(f"scale_invariance must lie in [0, 1], got {scale_invariance}")
        self.scale_invariance = scale_invariance
        self.eps = eps
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.warm_up_iters = warm_up_iters
        self.loss_weight = loss_weight
        self.loss_name = loss_name
        self.register_buffer("warm_up_calls", torch.zeros((), dtype=torch.long))

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss of pred (B, 1, H, W) or (B, H, W) against target (B, H, W), in metres.

        A batch without a valid pixel gives a zero that still carries the graph.
        """
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = _as_maps(pred, target)
            valid = valid_depth_mask(target, self.min_depth, self.max_depth)
            if not valid.any():
                return pred.sum() * 0.0
            g = torch.log(pred[valid] + self.eps) - torch.log(target[valid] + self.eps)
            mean = g.mean()
            scale_term = (1.0 - self.scale_invariance) * mean.square()
            if self.training and self.warm_up_calls < self.warm_up_iters:
                self.warm_up_calls += 1
                loss = torch.sqrt(scale_term)
            else:
                loss = torch.sqrt((g - mean).square().mean() + scale_term)
        return self.loss_weight * loss


@MODELS.register_module()
class GradientLoss(nn.Module):
    """Multi-scale scale-invariant gradient-matching loss (MegaDepth, Li & Snavely 2018, eq. 4).

    With ``R = log(pred + eps) - log(gt + eps)`` and scale k = 0 .. num_scales - 1 taking every
    ``2**k``-th row and column (``R_k = R[:, ::2**k, ::2**k]``, the same for the valid mask)::

        loss = sum_k ( sum |R_k[i, j+1] - R_k[i, j]| + sum |R_k[i+1, j] - R_k[i, j]| ) / N_k

    where each sum runs over the horizontally / vertically adjacent pairs whose two pixels are
    valid, over the whole batch, and ``N_k`` is the number of valid pixels of the batch at scale
    k (a scale with none adds 0). A global scale of ``pred`` shifts ``R`` by a constant, so the
    loss is zero for ``pred = c * gt`` when ``eps = 0``. Adjacent differences and ``2**k``
    strides follow the paper and MiDaS's ``GradientLoss``. DINOv2's ``gradientloss.py`` (weight
    0.5 in its DPT configs) differs: it takes differences two pixels apart, strides 1, 2, 4, 6,
    and slices the first two dimensions, which for (B, 1, H, W) maps are batch and channel.

    Args:
        num_scales: number of scales, each halving the resolution.
        eps: added to both depths before the logarithm (metres); DINOv2's 1e-3.
        min_depth: ground truth at or below it is ignored (metres); None keeps all ``gt > 0``.
        max_depth: ground truth above it is ignored (metres); None for no bound.
        loss_weight: multiplies the loss.
        loss_name: key under which the loss is logged; must start with ``loss``.
    """

    def __init__(
        self,
        num_scales: int = 4,
        eps: float = 1e-3,
        min_depth: float | None = None,
        max_depth: float | None = None,
        loss_weight: float = 1.0,
        loss_name: str = "loss_grad",
    ) -> None:
        super().__init__()
        _check_loss_name(loss_name)
        if num_scales < 1:
            raise ValueError(f"num_scales must be at least 1, got {num_scales}")
        self.num_scales = num_scales
        self.eps = eps
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss of pred (B, 1, H, W) or (B, H, W) against target (B, H, W), in metres."""
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred, target = _as_maps(pred, target)
            valid = valid_depth_mask(target, self.min_depth, self.max_depth)
            diff = log_depth_difference(pred, target, valid, self.eps)
            loss = pred.sum() * 0.0
            for scale in range(self.num_scales):
                step = 2**scale
                diff_k = diff[:, ::step, ::step]
                valid_k = valid[:, ::step, ::step]
                num_valid = valid_k.sum()
                if num_valid == 0:
                    continue
                pairs_x = valid_k[:, :, 1:] & valid_k[:, :, :-1]
                pairs_y = valid_k[:, 1:, :] & valid_k[:, :-1, :]
                grad_x = (diff_k[:, :, 1:] - diff_k[:, :, :-1]).abs() * pairs_x
                grad_y = (diff_k[:, 1:, :] - diff_k[:, :-1, :]).abs() * pairs_y
                loss = loss + (grad_x.sum() + grad_y.sum()) / num_valid
        return self.loss_weight * loss
