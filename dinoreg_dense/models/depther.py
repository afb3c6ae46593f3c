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
    a hard-coded 80 m) when the head's ``output_kind`` is ``"metric_depth"``. A head whose output
    is not metres (``"relative_disparity"``: Depth-Anything-V2's relative models) gives
    ``pred_disparity_map`` instead, unclamped: it only has meaning up to scale and shift, and a
    metric evaluation of it is refused rather than scored as metres.
    """

    def add_prediction(self, output: Tensor, sample: DenseDataSample) -> None:
        """Depth (1, H, W) -> ``pred_depth_map`` (H, W), clamped to the head's range; relative
        disparity (1, H, W) -> ``pred_disparity_map`` (H, W)."""
        head = self.decode_head
        if getattr(head, "output_kind", "metric_depth") == "relative_disparity":
            sample.pred_disparity_map = output[0]
            return
        sample.pred_depth_map = output[0].clamp(head.min_depth, head.max_depth)
