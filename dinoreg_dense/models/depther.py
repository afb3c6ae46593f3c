"""Monocular depth: a :class:`DenseModel` whose views average depth in metres."""

from torch import Tensor

from ..registry import MODELS
from ..structures import DenseDataSample
from .base import DenseModel


@MODELS.register_module()
class Depther(DenseModel):
    """Backbone -> depth head -> ``pred_depth_map`` (H, W) float32 metres at the original size.

    Takes :class:`DenseModel`'s arguments. Test-time views (flip, scales) average the depth
    itself; the result is clamped to the head's ``[min_depth, max_depth]`` (from the config, not
    a hard-coded 80 m).
    """

    def add_prediction(self, output: Tensor, sample: DenseDataSample) -> None:
        """Depth (1, H, W) -> ``pred_depth_map`` (H, W), clamped to the head's range."""
        head = self.decode_head
        sample.pred_depth_map = output[0].clamp(head.min_depth, head.max_depth)
