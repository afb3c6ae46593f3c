"""The protocol every dense head follows, in the spirit of mmsegmentation 1.x's decode heads.

A head maps backbone features to a task output with ``forward``; ``loss`` and ``predict`` wrap it
with the task's ``loss_by_feat`` and ``predict_by_feat``, so task models stay task-free::

    loss(features, data_samples)          -> {"loss_...": scalar tensor, ...}
    predict(features, batch_img_metas)    -> (B, out_channels, H, W) per-pixel output
"""

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..backbones import ViTFeatures
from ..structures import DenseDataSample


class BaseDenseHead(nn.Module):
    """Base of the dense heads.

    Subclasses set ``out_channels`` (channels of the per-pixel output that test-time views and
    sliding windows average: classes for segmentation, 1 for depth) and define ``forward``,
    ``loss_by_feat`` and ``predict_by_feat``.
    """

    out_channels: int

    @classmethod
    def in_channels_for(cls, cfg: dict, backbone: nn.Module) -> int:
        """``in_channels`` of a head built from ``cfg`` on ``backbone`` (its ``embed_dim``, its
        cls token), used by the task model when the config leaves ``in_channels`` unset: one
        map here."""
        return backbone.embed_dim

    def forward(self, features: ViTFeatures) -> Any:
        """Backbone features -> the head's raw output (e.g. patch-grid logits)."""
        raise NotImplementedError

    def loss(self, features: ViTFeatures, data_samples: Sequence[DenseDataSample]) -> dict:
        """Training losses for a batch whose targets the preprocessor padded to the input."""
        return self.loss_by_feat(self(features), features, data_samples)

    def predict(self, features: ViTFeatures, batch_img_metas: Sequence[dict]) -> Tensor:
        """Per-pixel output (B, out_channels, H, W) at each input's ``img_shape`` (H, W)."""
        return self.predict_by_feat(self(features), features, batch_img_metas)

    def loss_by_feat(
        self, outputs: Any, features: ViTFeatures, data_samples: Sequence[DenseDataSample]
    ) -> dict:
        """Loss dict from ``forward``'s outputs and the samples' targets."""
        raise NotImplementedError

    def predict_by_feat(
        self, outputs: Any, features: ViTFeatures, batch_img_metas: Sequence[dict]
    ) -> Tensor:
        """Per-pixel output from ``forward``'s outputs (see ``predict``)."""
        raise NotImplementedError


def padded_input_size(features: ViTFeatures) -> tuple[int, int]:
    """(H, W) of the backbone's padded input: its patch grid times the patch size."""
    grid_h, grid_w = features.patch_maps[0].shape[-2:]
    return grid_h * features.patch_size, grid_w * features.patch_size


def upsample_to_input(maps: Tensor, features: ViTFeatures, img_shape: Sequence[int]) -> Tensor:
    """Patch-grid maps (B, C, h, w) -> (B, C, H, W) at ``img_shape``.

    The maps are upsampled bilinearly (align_corners=False) to the backbone's padded input and
    cropped to the top-left ``img_shape``: the backbone pads on the right and bottom.
    """
    maps = F.interpolate(
        maps, size=padded_input_size(features), mode="bilinear", align_corners=False
    )
    return maps[..., : img_shape[0], : img_shape[1]]
