"""Pixel-wise cross-entropy with an ignore label."""

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS
from ..structures import IGNORE_INDEX
from .upsampled_cross_entropy import (
    fused_path_is_faster,
    interpolated_cross_entropy,
    upsampled_cross_entropy,
)


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

    Args:
        ignore_index: label excluded from the loss (``structures.IGNORE_INDEX``, 255).
        loss_weight: multiplies the loss.
        loss_name: key under which the loss is logged; must start with ``loss``.
    """

    def __init__(
        self, ignore_index: int = IGNORE_INDEX, loss_weight: float = 1.0, loss_name: str = "loss_ce"
    ) -> None:
        super().__init__()
        if not loss_name.startswith("loss"):
            raise ValueError(f"loss_name must start with 'loss' to be optimised, got {loss_name}")
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(
        self, logits: Tensor, labels: Tensor, upsample_size: tuple[int, int] | None = None
    ) -> Tensor:
        """Scalar loss of logits (B, K, h, w) against labels (B, H, W) int64.

        If the logits are smaller than the labels (or ``upsample_size`` is given), they are
        upsampled bilinearly to ``upsample_size`` (default: the labels' size) and cropped to the
        labels, as in DINOv2's probe: by :func:`upsampled_cross_entropy`, which never builds
        the (B, K, H, W) tensor, where :func:`fused_path_is_faster` says so, otherwise by
        :func:`interpolated_cross_entropy`. Both give the same loss.
        """
        valid = labels != self.ignore_index
        if not valid.any():
            # A crop made only of ignored pixels: a zero that still carries the graph.
            return logits.sum() * 0.0
        if upsample_size is None and logits.shape[-2:] == labels.shape[-2:]:
            loss = F.cross_entropy(logits, labels, ignore_index=self.ignore_index)
        else:
            size = upsample_size if upsample_size is not None else labels.shape[-2:]
            num_classes, grid_rows = logits.shape[1:3]
            if fused_path_is_faster(num_classes, grid_rows, size, logits.device.type):
                loss = upsampled_cross_entropy(logits, labels, upsample_size, self.ignore_index)
            else:
                loss = interpolated_cross_entropy(logits, labels, upsample_size, self.ignore_index)
        return self.loss_weight * loss
