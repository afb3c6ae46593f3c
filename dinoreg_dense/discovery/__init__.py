"""Unsupervised single-object discovery (LOST, TokenCut) as pure tensor functions, no I/O.

Features come from the backbone's attention split by token type
(:func:`discovery_features`), so cls and registers never count as patches.
"""

from .boxes import box_iou
from .components import Discovery
from .features import discovery_features
from .lost import lost, lost_batch, lost_degrees, lost_scores
from .tokencut import tokencut, tokencut_eigenvector

__all__ = [
    "Discovery",
    "box_iou",
    "discovery_features",
    "lost",
    "lost_batch",
    "lost_degrees",
    "lost_scores",
    "tokencut",
    "tokencut_eigenvector",
]
