"""Semantic segmentation scores (aAcc, mIoU, mAcc, mDice, mFscore) from per-image histograms."""

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from torch import Tensor

from ..registry import METRICS
from ..structures import IGNORE_INDEX

SUPPORTED_METRICS = ("mIoU", "mDice", "mFscore")


def intersect_and_union(
    pred: Tensor, label: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-class pixel counts of one image, on the device of ``pred``.

    Pixels whose label is ``ignore_index`` are left out of every count.

    Args:
        pred: (H, W) integer predicted classes in ``[0, num_classes)``.
        label: (H, W) integer ground-truth classes in ``[0, num_classes)`` or ``ignore_index``.
        num_classes: K, the number of classes.
        ignore_index: label value that marks pixels without ground truth.

    Returns:
        Four int64 tensors of shape (K,): intersection (pixels where prediction and label are
        both class k), union, predicted area and label area of each class.

    Raises:
        ValueError: shapes differ, or a class index falls outside ``[0, num_classes)``; this
            usually means the model and the dataset disagree on the number of classes.
    """
    if pred.shape != label.shape:
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)}"
        )
    if pred.is_floating_point() or label.is_floating_point():
        raise ValueError(
            f"expected integer class maps, got prediction {pred.dtype} and label {label.dtype}"
        )
    label = label.to(pred.device)
    valid = label != ignore_index
    pred_valid = pred[valid].long()
    label_valid = label[valid].long()
    _check_class_range(pred, num_classes, "prediction")
    _check_class_range(label_valid, num_classes, f"label (besides ignore_index={ignore_index})")
    area_intersect = torch.bincount(pred_valid[pred_valid == label_valid], minlength=num_classes)
    area_pred = torch.bincount(pred_valid, minlength=num_classes)
    area_label = torch.bincount(label_valid, minlength=num_classes)
    area_union = area_pred + area_label - area_intersect
    return area_intersect, area_union, area_pred, area_label


def _check_class_range(classes: Tensor, num_classes: int, what: str) -> None:
    """Raise if any entry of ``classes`` (any shape) lies outside ``[0, num_classes)``."""
    if not classes.numel():
        return
    lowest, highest = (int(v) for v in torch.aminmax(classes))
    if lowest < 0 or highest >= num_classes:
        raise ValueError(
            f"{what} contains class indices in [{lowest}, {highest}] but there are "
            f"{num_classes} classes: do the model's num_classes and the dataset's classes agree?"
        )


def iou_from_histograms(
    area_intersect: Tensor,
    area_union: Tensor,
    area_pred: Tensor,
    area_label: Tensor,
    metrics: Sequence[str] = ("mIoU",),
    nan_to_num: float | None = None,
    beta: float = 1.0,
) -> dict[str, Tensor]:
    """Scores in [0, 1] from pixel counts summed over a dataset.

    A class with an empty denominator (e.g. IoU of a class absent from both prediction and
    ground truth, Acc of a class absent from the ground truth) scores NaN, so that means taken
    with ``nanmean`` leave it out.

    Args:
        area_intersect: (K,) summed intersections, as returned by :func:`intersect_and_union`.
        area_union: (K,) summed unions.
        area_pred: (K,) summed predicted areas.
        area_label: (K,) summed label areas.
        metrics: any of ``'mIoU'`` (adds IoU, Acc), ``'mDice'`` (Dice, Acc) and ``'mFscore'``
            (Fscore, Precision, Recall).
        nan_to_num: if given, NaN scores are replaced by this value.
        beta: weight of recall in the F-score.

    Returns:
        ``'aAcc'``: () overall pixel accuracy, and one (K,) float64 tensor per per-class score
        (``'IoU'``, ``'Acc'``, ``'Dice'``, ``'Fscore'``, ``'Precision'``, ``'Recall'``).
    """
    unknown = set(metrics) - set(SUPPORTED_METRICS)
    if unknown:
        raise KeyError(f"unsupported metrics {sorted(unknown)}; choose from {SUPPORTED_METRICS}")
    # float64 keeps counts exact up to 2**53 pixels, far beyond any dataset.
    intersect, union = area_intersect.double(), area_union.double()
    pred, label = area_pred.double(), area_label.double()
    scores = {"aAcc": intersect.sum() / label.sum()}
    if "mIoU" in metrics:
        scores["IoU"] = intersect / union
        scores["Acc"] = intersect / label
    if "mDice" in metrics:
        scores["Dice"] = 2 * intersect / (pred + label)
        scores["Acc"] = intersect / label
    if "mFscore" in metrics:
        precision = intersect / pred
        recall = intersect / label
        scores["Fscore"] = (1 + beta**2) * precision * recall / (beta**2 * precision + recall)
        scores["Precision"] = precision
        scores["Recall"] = recall
    if nan_to_num is not None:
        scores = {name: torch.nan_to_num(value, nan=nan_to_num) for name, value in scores.items()}
    return scores


def _format_class_table(class_names: Sequence[str], per_class: Mapping[str, Tensor]) -> str:
    """Plain-text table with one row per class and one column per score, in percent.

    Args:
        class_names: K names.
        per_class: score name -> (K,) tensor of scores in [0, 1] (NaN prints as ``nan``).

    Returns:
        The table, lines joined by newlines.
    """
    headers = ["Class", *per_class]
    rows = [
        [str(name), *(f"{100 * float(score[k]):.2f}" for score in per_class.values())]
        for k, name in enumerate(class_names)
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        return " | ".join(
            [first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))]
        )

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


@METRICS.register_module()
class IoUMetric(BaseMetric):
    """Semantic segmentation metric: aAcc, mIoU and mAcc (optionally mDice, mFscore) in percent.

    ``process`` keeps four (K,) histograms per image, never the maps, so that distributed
    evaluation gathers little data and MMEngine can drop the samples a distributed sampler
    repeated to pad the last batch. ``compute_metrics`` sums them over the dataset; classes
    with an empty denominator are NaN per class and left out of the means (unless
    ``nan_to_num`` is set). The scores match mmsegmentation 1.x's ``IoUMetric`` except that
    the returned means are not rounded and out-of-range class indices raise instead of being
    dropped.

    Args:
        ignore_index: label value of pixels without ground truth.
        iou_metrics: any of ``'mIoU'``, ``'mDice'``, ``'mFscore'``.
        nan_to_num: if given, replaces NaN per-class scores before averaging.
        beta: weight of recall in the F-score.
        collect_device: ``'cpu'`` or ``'gpu'``, where ranks gather their results.
        prefix: prepended to the metric names as ``'{prefix}/mIoU'``.
        collect_dir: shared folder used to gather results with ``collect_device='cpu'``;
            ``None`` lets MMEngine create one under ``./.dist_test``.
    """

    # mmseg's metric names carry no prefix ('mIoU', not 'val/mIoU'); "" says so without
    # MMEngine's "prefix is not set" warning.
    default_prefix = ""

    def __init__(
        self,
        ignore_index: int = IGNORE_INDEX,
        iou_metrics: Sequence[str] = ("mIoU",),
        nan_to_num: float | None = None,
        beta: float = 1.0,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if isinstance(iou_metrics, str):
            iou_metrics = (iou_metrics,)
        unknown = set(iou_metrics) - set(SUPPORTED_METRICS)
        if unknown:
            raise KeyError(
                f"unsupported iou_metrics {sorted(unknown)}; choose from {SUPPORTED_METRICS}"
            )
        self.ignore_index = ignore_index
        self.iou_metrics = tuple(iou_metrics)
        self.nan_to_num = nan_to_num
        self.beta = beta

    @property
    def class_names(self) -> list[str]:
        """Names of the K classes, from ``dataset_meta['classes']``."""
        if not self.dataset_meta or "classes" not in self.dataset_meta:
            raise RuntimeError(
                "IoUMetric needs dataset_meta['classes']; the Runner sets it from the dataset's "
                "metainfo, otherwise assign metric.dataset_meta = {'classes': [...]}"
            )
        return list(self.dataset_meta["classes"])

    def process(self, data_batch: Any, data_samples: Sequence[Mapping[str, Any]]) -> None:
        """Append one (4, K) int64 histogram per image to ``self.results``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: per-image dicts (``SegDataSample.to_dict()``) with ``pred_sem_seg``
                and ``gt_sem_seg``: (H, W) integer tensors of the same size.
        """
        num_classes = len(self.class_names)
        for sample in data_samples:
            histograms = intersect_and_union(
                sample["pred_sem_seg"], sample["gt_sem_seg"], num_classes, self.ignore_index
            )
            self.results.append(torch.stack(histograms).cpu())

    def compute_metrics(self, results: list[Tensor]) -> dict[str, float]:
        """Sum the per-image histograms, log a per-class table and return the mean scores.

        Args:
            results: one (4, K) histogram per image of the whole dataset.

        Returns:
            ``aAcc`` and ``m<score>`` for every per-class score (``mIoU``, ``mAcc`` ...), in
            percent.
        """
        class_names = self.class_names
        total = torch.stack(results).sum(dim=0)
        scores = iou_from_histograms(
            *total, metrics=self.iou_metrics, nan_to_num=self.nan_to_num, beta=self.beta
        )
        overall = scores.pop("aAcc")
        logger = MMLogger.get_current_instance()
        print_log("per class results:\n" + _format_class_table(class_names, scores), logger)
        means = {"aAcc": 100 * overall.item()}
        means.update({f"m{name}": 100 * value.nanmean().item() for name, value in scores.items()})
        return means
