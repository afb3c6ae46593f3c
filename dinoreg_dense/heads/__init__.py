"""Prediction heads fed with :class:`~dinoreg_dense.backbones.ViTFeatures`."""

from .base import BaseDenseHead, padded_input_size, upsample_to_input
from .dpt import DPTHead, DPTSegHead
from .linear import LinearHead
from .linear_depth import LinearDepthHead
from .mask2former import Mask2FormerHead, MaskedAttentionDecoder
from .simple_pyramid import LayerNorm2d, SimpleFeaturePyramid

__all__ = [
    "BaseDenseHead",
    "DPTHead",
    "DPTSegHead",
    "LayerNorm2d",
    "LinearDepthHead",
    "LinearHead",
    "Mask2FormerHead",
    "MaskedAttentionDecoder",
    "SimpleFeaturePyramid",
    "padded_input_size",
    "upsample_to_input",
]
