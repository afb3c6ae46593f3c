"""Prediction heads fed with :class:`~dinoreg_dense.backbones.ViTFeatures`."""

from .base import BaseDenseHead, padded_input_size, upsample_to_input
from .linear import LinearHead

__all__ = ["BaseDenseHead", "LinearHead", "padded_input_size", "upsample_to_input"]
