"""CorLoc: the share of images whose predicted box overlaps a ground-truth box by IoU >= 0.5.

The measure of unsupervised single-object discovery (LOST, Siméoni et al. 2021; TokenCut, Wang et
al. 2022; the registers paper, Darcet et al. 2023): each image has one predicted box and counts as
correctly localised when that box has IoU >= 0.5 with *any* of its ground-truth boxes, whatever
their class. Conventions:

- Boxes are pixel ``x0, y0, x1, y1`` with the end exclusive, IoU by
  :func:`dinoreg_dense.discovery.box_iou` (the one box convention of the package); boxes that only
  touch share no area (IoU 0).
- IoU exactly 0.5 is a hit (the definition says ">= 0.5"). LOST's reference IoU adds 1e-7 to the
  heights and the union in float32, which can put an exact 0.5 just below it; real boxes almost
  never tie.
- An image without ground-truth boxes (a COCO image whose boxes are all crowd regions) or without
  a predicted box stays in the denominator as a miss, as in LOST's evaluation loop.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from torch import Tensor

from ..discovery import box_iou
from ..registry import METRICS

CORLOC_IOU = 0.5


def corloc_hit(pred_box: Tensor, gt_boxes: Tensor, iou_threshold: float = CORLOC_IOU) -> bool:
    """Whether one image is correctly localised.

    Args:
        pred_box: (4,) or (1, 4) predicted box, pixel ``x0, y0, x1, y1``, or (0, 4): no box.
        gt_boxes: (M, 4) ground-truth boxes of the image in the same convention (M may be 0).
        iou_threshold: the overlap that counts (0.5 by definition).

    Returns:
        True when the predicted box has IoU >= ``iou_threshold`` with at least one ground-truth
        box; False without a predicted or a ground-truth box.
    """
    pred = torch.as_tensor(pred_box, dtype=torch.float32).reshape(-1, 4)
    gt = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4).to(pred.device)
    if not len(pred) or not len(gt):
        return False
    return bool((box_iou(pred[:1], gt) >= iou_threshold).any())


def best_iou(pred_box: Tensor, gt_boxes: Tensor) -> float:
    """Largest IoU of the predicted box (4,) with any of the (M, 4) boxes; 0.0 when M = 0."""
    gt = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4)
    if not len(gt):
        return 0.0
    pred = torch.as_tensor(pred_box, dtype=torch.float32).reshape(-1, 4)[:1]
    return float(box_iou(pred, gt.to(pred.device)).max())


@METRICS.register_module()
class CorLocMetric(BaseMetric):
    """CorLoc in percent over a dataset, safe under distributed evaluation.

    ``process`` keeps one hit flag per image; MMEngine gathers them from every rank and drops the
    samples a distributed sampler repeated to pad the last batch, so the count is exactly one per
    image of the dataset.

    Args:
        iou_threshold: the IoU a hit needs (0.5 by definition).
        collect_device: ``'cpu'`` or ``'gpu'``, where ranks gather their results.
        prefix: prepended to the metric names as ``'{prefix}/corloc'``.
        collect_dir: shared folder used to gather results with ``collect_device='cpu'``.
    """

    default_prefix = ""

    def __init__(
        self,
        iou_threshold: float = CORLOC_IOU,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.iou_threshold = iou_threshold

    def process(self, data_batch: Any, data_samples: Sequence[Mapping[str, Any]]) -> None:
        """Append one bool per image to ``self.results``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: per-image dicts (``DenseDataSample.to_dict()``) with
                ``pred_instances["bboxes"]`` (K, 4), the first row being the prediction (K = 0:
                none), and ``gt_instances["bboxes"]`` (M, 4).
        """
        for sample in data_samples:
            pred = sample["pred_instances"]["bboxes"]
            gt = sample["gt_instances"]["bboxes"]
            self.results.append(corloc_hit(pred, gt, self.iou_threshold))

    def compute_metrics(self, results: list[bool]) -> dict[str, float]:
        """``corloc`` (percent), ``hits`` and ``images`` from the per-image flags.

        Raises:
            ValueError: no image was evaluated.
        """
        if not results:
            raise ValueError("CorLoc of an empty dataset: no image was evaluated")
        hits = int(sum(results))
        return dict(corloc=100.0 * hits / len(results), hits=hits, images=len(results))
