"""Batching of dataset items: normalise, stack, pad images and every per-pixel training target."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor
from torch import Tensor

from ..registry import MODELS
from ..structures import PIXEL_FIELD_PAD_VALUES, DenseDataSample


@MODELS.register_module()
class DenseDataPreProcessor(BaseDataPreprocessor):
    """Turn ``pseudo_collate``d items into a normalised batch padded right / bottom.

    Padding to a multiple of the patch size is not done here: the backbone owns the patch grid
    and pads its own input (``ViTFeatures.padding``).

    Args:
        mean, std: per-channel RGB statistics in 0-255 units (ImageNet by default).
        size: pad every training batch at least to this (h, w), the training crop, so that
            images smaller than the crop (after random resizing) keep the crop's layout.
        pad_val: value of padded image pixels after normalisation.

    In training batches each per-pixel target in
    :data:`~dinoreg_dense.structures.PIXEL_FIELD_PAD_VALUES` (``gt_sem_seg`` with the ignore
    label, ``gt_depth_map`` with 0) and the ``masks`` (N, H, W) of ``gt_instances`` (with
    ``False``) are padded to the batch size; every sample records ``img_shape`` and ``pad_shape``.
    """

    def __init__(
        self,
        mean: Sequence[float] = (123.675, 116.28, 103.53),
        std: Sequence[float] = (58.395, 57.12, 57.375),
        size: Sequence[int] | None = None,
        pad_val: float = 0.0,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)
        self.size = tuple(size) if size is not None else None
        self.pad_val = pad_val

    def forward(self, data: dict, training: bool = False) -> dict:
        """``{'inputs': [uint8 (3, H_i, W_i)], 'data_samples': [DenseDataSample]}`` ->
        ``{'inputs': float (B, 3, H, W), 'data_samples': [...]}`` with H, W the largest
        image sides (at least ``size`` in training)."""
        data = self.cast_data(data)
        images: list[Tensor] = list(data["inputs"])
        samples: list[DenseDataSample] | None = data.get("data_samples")
        height = max(img.shape[-2] for img in images)
        width = max(img.shape[-1] for img in images)
        if training and self.size is not None:
            height, width = max(height, self.size[0]), max(width, self.size[1])
        batch = []
        for i, img in enumerate(images):
            img = (img.float() - self.mean) / self.std
            pad = (0, width - img.shape[-1], 0, height - img.shape[-2])
            batch.append(F.pad(img, pad, value=self.pad_val))
            if samples is None:
                continue
            sample = samples[i]
            sample.set_metainfo({"img_shape": tuple(img.shape[-2:]), "pad_shape": (height, width)})
            if training:
                _pad_targets(sample, pad)
        return {"inputs": torch.stack(batch), "data_samples": samples}


def _pad_targets(sample: DenseDataSample, pad: tuple[int, int, int, int]) -> None:
    """Pad the per-pixel training targets of ``sample`` in place, each with its own value."""
    for field, value in PIXEL_FIELD_PAD_VALUES.items():
        if field in sample:
            setattr(sample, field, F.pad(getattr(sample, field), pad, value=value))
    if "gt_instances" in sample and "masks" in sample.gt_instances:
        masks = sample.gt_instances.masks
        # F.pad has no bool kernel: pad as uint8 with 0 (False) and cast back.
        sample.gt_instances.masks = F.pad(masks.to(torch.uint8), pad, value=0).bool()
