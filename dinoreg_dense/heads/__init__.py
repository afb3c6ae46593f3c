"""Prediction heads fed with :class:`~dinoreg_dense.backbones.ViTFeatures`."""

from .base import BaseDenseHead, padded_input_size, upsample_to_input
from .dpt import DPTHead, DPTSegHead
from .linear import LinearHead
from .linear_depth import LinearDepthHead

__all__ = [
    "BaseDenseHead",
    "DPTHead",
    "DPTSegHead",
    "LinearDepthHead",
    "LinearHead",
    "padded_input_size",
    "upsample_to_input",
]
