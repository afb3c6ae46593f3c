"""Losses for the dense heads."""

from .cross_entropy import CrossEntropyLoss

__all__ = ["CrossEntropyLoss"]
