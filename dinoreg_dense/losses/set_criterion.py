"""Mask2Former's set criterion: class cross-entropy + point mask BCE + point dice, matched.

Cheng et al., CVPR 2022 (arXiv 2112.01527), sec. 3.3 and 4; reference
``mask2former/modeling/criterion.py``. Per decoder layer: match queries to targets
(:class:`~.hungarian_matcher.HungarianMatcher`), then

- ``loss_cls``: cross-entropy of every query's (K + 1)-way logits, the target being the matched
  target's class or K ("no object") for unmatched queries, with class weight
  ``no_object_weight`` on K (a weighted mean over the B * Q queries, as ``F.cross_entropy``);
- ``loss_mask``: sigmoid BCE and ``loss_dice``: dice of matched masks on ``num_points``
  importance-sampled points per mask (:func:`~.point_sampling.sample_uncertain_points` on the
  predicted logits), summed over masks and divided by the number of target masks per process
  averaged over processes (at least 1).

Each loss is multiplied by its weight; with deep supervision the same losses of the
intermediate layers (``aux_outputs[i]``, each matched on its own) are added with suffix
``_d{i}``.

Crowd / ignore regions: targets carry none. Crowd annotations (COCO ``iscrowd=1``) are dropped
before they reach the criterion, as Mask2Former's COCO instance training does (detectron2's
dataset mapper filters ``iscrowd`` objects). A query that fires on a crowd region is then pushed
towards "no object", as in the reference; the ignore only matters for evaluation, where
``COCOeval`` does not count detections on crowd regions as false positives.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS
from .hungarian_matcher import HungarianMatcher
from .mask_losses import dice_loss, sigmoid_bce_loss
from .point_sampling import point_sample, sample_uncertain_points


def average_num_masks(targets: list[dict[str, Tensor]], device: torch.device) -> Tensor:
    """Number of target masks in this process's batch, averaged over processes, at least 1.

    A float32 scalar on ``device``; all-reduced when ``torch.distributed`` is initialised, so
    every process divides its mask losses by the same number.
    """
    num_masks = torch.tensor(
        float(sum(t["labels"].numel() for t in targets)), dtype=torch.float32, device=device
    )
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(num_masks)
        num_masks = num_masks / dist.get_world_size()
    return num_masks.clamp(min=1)


@MODELS.register_module()
class SetCriterion(nn.Module):
    """Mask2Former's training losses, matched per decoder layer.

    Args:
        num_classes: K, the number of object classes; logits have K + 1 entries, the last one
            "no object".
        matcher: a :class:`HungarianMatcher` or its config dict
            (``dict(type='HungarianMatcher', ...)``).
        class_weight, mask_weight, dice_weight: multiply ``loss_cls``, ``loss_mask``,
            ``loss_dice`` (Mask2Former: 2, 5, 5).
        no_object_weight: cross-entropy class weight of "no object" (Mask2Former: 0.1).
        num_points: points per matched mask for the mask losses (112^2 = 12544).
        oversample_ratio, importance_sample_ratio: PointRend importance sampling (3.0, 0.75).
        deep_supervision: add the losses of ``aux_outputs``, suffixed ``_d{i}``.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher | dict,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        no_object_weight: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = MODELS.build(matcher) if isinstance(matcher, dict) else matcher
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.no_object_weight = no_object_weight
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.deep_supervision = deep_supervision
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(
        self,
        outputs: dict,
        targets: list[dict[str, Tensor]],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Weighted losses of a batch.

        Args:
            outputs: ``pred_logits`` (B, Q, K + 1), ``pred_masks`` (B, Q, h, w) and, optionally,
                ``aux_outputs``: a list of dicts with the same two keys, one per intermediate
                decoder layer.
            targets: B dicts with ``labels`` (N,) int64 in [0, K) and ``masks`` (N, H, W) bool
                at the (padded) input resolution, the same (H, W) in every image; N may be 0.
            generator: source of every random point (the matcher's, then the importance
                sampler's, layer by layer: last layer first, then ``aux_outputs`` in order), on
                the device of the predictions; the global generator if None.

        Returns:
            ``loss_cls``, ``loss_mask``, ``loss_dice`` (scalars, already weighted) and, with deep
            supervision, ``loss_cls_d{i}`` etc. for ``aux_outputs[i]``.
        """
        sizes = {tuple(t["masks"].shape[-2:]) for t in targets}
        if len(sizes) > 1:
            raise ValueError(
                f"target masks have sizes {sorted(sizes)}: pad them to the batch's input size "
                "(the size the predicted masks cover) before the criterion"
            )
        num_masks = average_num_masks(targets, outputs["pred_logits"].device)
        losses = self.layer_losses(outputs, targets, num_masks, generator)
        if self.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs", [])):
                aux_losses = self.layer_losses(aux, targets, num_masks, generator)
                losses.update({f"{key}_d{i}": value for key, value in aux_losses.items()})
        return losses

    def layer_losses(
        self,
        outputs: dict[str, Tensor],
        targets: list[dict[str, Tensor]],
        num_masks: Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_mask``, ``loss_dice`` of one decoder layer (see :meth:`forward`)."""
        pred_logits, pred_masks = outputs["pred_logits"], outputs["pred_masks"]
        indices = self.matcher(pred_logits, pred_masks, targets, generator)
        loss_cls = self.class_loss(pred_logits, targets, indices)
        loss_mask, loss_dice = self.mask_losses(pred_masks, targets, indices, num_masks, generator)
        return {
            "loss_cls": self.class_weight * loss_cls,
            "loss_mask": self.mask_weight * loss_mask,
            "loss_dice": self.dice_weight * loss_dice,
        }

    def class_loss(
        self,
        pred_logits: Tensor,
        targets: list[dict[str, Tensor]],
        indices: list[tuple[Tensor, Tensor]],
    ) -> Tensor:
        """Unweighted class cross-entropy over all B * Q queries; unmatched ones target K."""
        batch, num_queries = pred_logits.shape[:2]
        target_classes = torch.full(
            (batch, num_queries), self.num_classes, dtype=torch.int64, device=pred_logits.device
        )
        for image, (target, (query_idx, target_idx)) in enumerate(
            zip(targets, indices, strict=True)
        ):
            target_classes[image, query_idx.to(pred_logits.device)] = target["labels"][target_idx]
        logits = pred_logits.transpose(1, 2)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return F.cross_entropy(logits, target_classes, weight=self.class_weights.to(logits.dtype))

    def mask_losses(
        self,
        pred_masks: Tensor,
        targets: list[dict[str, Tensor]],
        indices: list[tuple[Tensor, Tensor]],
        num_masks: Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Unweighted (BCE, dice) of the matched masks on importance-sampled points."""
        device = pred_masks.device
        images = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)]).to(device)
        queries = torch.cat([q for q, _ in indices]).to(device)
        if queries.numel() == 0:
            # No targets in the batch: zeros that keep every mask logit in the graph.
            zero = pred_masks.sum() * 0.0
            return zero, zero.clone()
        matched_logits = pred_masks[images, queries].unsqueeze(1)  # (M, 1, h, w)
        matched_logits = matched_logits.to(torch.promote_types(matched_logits.dtype, torch.float32))
        matched_targets = torch.cat(
            [
                target["masks"][target_idx.to(target["masks"].device)]
                for target, (_, target_idx) in zip(targets, indices, strict=True)
            ]
        ).unsqueeze(1)  # (M, 1, H, W)
        with torch.no_grad():
            coords = sample_uncertain_points(
                matched_logits,
                self.num_points,
                self.oversample_ratio,
                self.importance_sample_ratio,
                generator,
            )
            point_labels = point_sample(matched_targets.to(device, coords.dtype), coords)[:, 0]
        point_logits = point_sample(matched_logits, coords)[:, 0]  # (M, P)
        return (
            sigmoid_bce_loss(point_logits, point_labels, num_masks),
            dice_loss(point_logits, point_labels, num_masks),
        )
