"""Batching of dataset items: normalise, stack, pad images (and training labels)."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from ..registry import MODELS
from ..structures import SegDataSample


@MODELS.register_module()
class SegDataPreProcessor(BaseDataPreprocessor):
    """Turn ``pseudo_collate``d items into a padded, normalised batch.

    Args:
        mean, std: per-channel RGB statistics in 0-255 units (ImageNet by default).
        size: pad every training batch at least to this (h, w), the training crop.
        size_divisor: pad height and width up to a multiple of this (the patch size).
        pad_val: value of padded image pixels after normalisation.
        seg_pad_val: label of padded pixels (ignored by the loss and the metric).
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        size: Sequence[int] | None = None,
        size_divisor: int | None = None,
        pad_val: float = 0.0,
        seg_pad_val: int = 255,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)
        self.size = tuple(size) if size is not None else None
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def forward(self, data: dict, training: bool = False) -> dict:
        """``{'inputs': [uint8 (3, H_i, W_i)], 'data_samples': [SegDataSample]}`` ->
        ``{'inputs': float (B, 3, H, W), 'data_samples': [...]}``; training labels are padded
        to (H, W) with ``seg_pad_val`` and every sample records ``pad_shape``."""
        data = self.cast_data(data)
        images: list[Tensor] = list(data["inputs"])
        samples: list[SegDataSample] | None = data.get("data_samples")
        height = max(img.shape[-2] for img in images)
        width = max(img.shape[-1] for img in images)
        if training and self.size is not None:
            height, width = max(height, self.size[0]), max(width, self.size[1])
        if self.size_divisor:
            height = math.ceil(height / self.size_divisor) * self.size_divisor
            width = math.ceil(width / self.size_divisor) * self.size_divisor
        batch = []
        for i, img in enumerate(images):
            img = (img.float() - self.mean) / self.std
            pad = (0, width - img.shape[-1], 0, height - img.shape[-2])
            batch.append(F.pad(img, pad, value=self.pad_val))
            if samples is None:
                continue
            sample = samples[i]
            sample.set_metainfo({"img_shape": tuple(img.shape[-2:]), "pad_shape": (height, width)})
            if training and "gt_sem_seg" in sample:
                sample.gt_sem_seg = F.pad(sample.gt_sem_seg, pad, value=self.seg_pad_val)
        return {"inputs": torch.stack(batch), "data_samples": samples}
