"""Metrics run by MMEngine's Evaluator, with the pure functions behind them."""

from .iou_metric import IoUMetric, intersect_and_union, iou_from_histograms

__all__ = ["IoUMetric", "intersect_and_union", "iou_from_histograms"]
