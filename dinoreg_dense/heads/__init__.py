"""Prediction heads fed with :class:`~dinoreg_dense.backbones.ViTFeatures`."""

from .linear import LinearHead

__all__ = ["LinearHead"]
