"""ImageNet normalisation for tools that feed photos to a backbone without a data preprocessor
(feature extraction, artifact diagnostics, object discovery). Training and evaluation normalise
in :class:`~dinoreg_dense.models.DenseDataPreProcessor`, with the same values in 0-255 units."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""RGB mean and standard deviation of ImageNet in [0, 1] units, as DINO / DINOv2 normalise."""


def imagenet_normalise(images: Tensor) -> Tensor:
    """(B, 3, H, W) uint8 RGB (0..255) or float in [0, 1] -> float32, minus the ImageNet mean,
    divided by its standard deviation, per channel."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def resize_short_side(image: np.ndarray, size: int) -> tuple[np.ndarray, Tensor]:
    """Resize a photo so its shorter side is ``size`` pixels (bilinear, antialiased).

    Args:
        image: (H, W, 3) uint8 RGB.
        size: shorter side after resizing, pixels.

    Returns:
        The resized (h, w, 3) uint8 picture and its ImageNet-normalised (1, 3, h, w) tensor.
    """
    x = torch.tensor(image).permute(2, 0, 1).float()[None] / 255.0  # copies: PIL is read-only
    x = F.interpolate(x, scale_factor=size / min(image.shape[:2]), mode="bilinear", antialias=True)
    x = x.clamp(0, 1)
    picture = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    return picture, imagenet_normalise(x)
