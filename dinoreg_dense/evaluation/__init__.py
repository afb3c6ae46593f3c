"""Metrics run by MMEngine's Evaluator, with the pure functions behind them."""

from .coco_metric import COCOInstanceMetric, encode_masks, instances_to_coco_results
from .corloc import CORLOC_IOU, CorLocMetric, best_iou, corloc_hit
from .depth_metric import DEPTH_METRIC_NAMES, DepthMetric, depth_errors, depth_eval_mask
from .iou_metric import IoUMetric, intersect_and_union, iou_from_histograms

__all__ = [
    "COCOInstanceMetric",
    "CORLOC_IOU",
    "CorLocMetric",
    "DEPTH_METRIC_NAMES",
    "DepthMetric",
    "IoUMetric",
    "best_iou",
    "corloc_hit",
    "depth_errors",
    "depth_eval_mask",
    "encode_masks",
    "instances_to_coco_results",
    "intersect_and_union",
    "iou_from_histograms",
]
