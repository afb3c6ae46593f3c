"""Semantic segmentation: a :class:`DenseModel` whose views average class probabilities."""

from typing import Any, ClassVar

from torch import Tensor

from ..registry import MODELS
from ..structures import DenseDataSample
from .base import DenseModel


@MODELS.register_module()
class Segmentor(DenseModel):
    """Backbone -> decode head (class logits) -> per-pixel classes at the original size.

    Takes :class:`DenseModel`'s arguments; ``test_cfg`` also accepts ``return_logits`` (keep the
    averaged class probabilities as ``seg_logits``). Test-time views (scales, flip) average
    softmax probabilities, as mmsegmentation's and DINOv2's multi-scale testing do.
    """

    extra_test_cfg: ClassVar[dict[str, Any]] = dict(return_logits=False)

    @property
    def num_classes(self) -> int:
        """Classes the head predicts."""
        return self.decode_head.num_classes

    def merge_view(self, output: Tensor) -> Tensor:
        """Logits (B, K, H, W) -> class probabilities (B, K, H, W)."""
        return output.softmax(dim=1)

    def add_prediction(self, output: Tensor, sample: DenseDataSample) -> None:
        """Probabilities (K, H, W) -> ``pred_sem_seg`` (H, W) int64 (and ``seg_logits``)."""
        sample.pred_sem_seg = output.argmax(dim=0)
        if self.test_cfg["return_logits"]:
            sample.seg_logits = output
