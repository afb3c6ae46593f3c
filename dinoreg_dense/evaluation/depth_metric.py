"""Monocular depth scores (delta thresholds, abs_rel, rmse, silog ...) computed per image."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from torch import Tensor

from ..registry import METRICS

DEPTH_METRIC_NAMES = (
    "d1",
    "d2",
    "d3",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
)
"""Order of the entries of the vector returned by :func:`depth_errors`."""

EIGEN_CROP_SHAPE = (480, 640)
"""The only map size the Eigen crop is defined for (NYU Depth v2 at full resolution)."""

SUPPORTED_CROPS = ("eigen", "garg")


def depth_eval_mask(
    gt: Tensor, min_depth: float, max_depth: float, crop: str | None = None
) -> Tensor:
    """Pixels that count in the scores: ``min_depth < gt < max_depth``, inside the crop.

    Crops (the NYU and KITTI test conventions of Eigen et al. 2014 and Garg et al. 2016, as in
    BTS and the Monocular-Depth-Estimation-Toolbox):

    - ``'eigen'``: rows 45:471, cols 41:601 of a 480x640 map.
    - ``'garg'``: rows ``int(0.40810811 H):int(0.99189189 H)``, cols
      ``int(0.03594771 W):int(0.96405229 W)``, for any (H, W).

    Args:
        gt: (H, W) float ground-truth depth in metres, 0 = no measurement.
        min_depth: metres; ground truth at or below it is left out.
        max_depth: metres; ground truth at or above it is left out.
        crop: ``None``, ``'eigen'`` or ``'garg'``.

    Returns:
        (H, W) bool mask on the device of ``gt``.

    Raises:
        ValueError: unknown crop, or the Eigen crop asked of a map that is not 480x640.
    """
    valid = (gt > min_depth) & (gt < max_depth)
    if crop is None:
        return valid
    height, width = gt.shape
    if crop == "eigen":
        if (height, width) != EIGEN_CROP_SHAPE:
            raise ValueError(
                f"the Eigen crop is defined for 480x640 NYU maps, got {height}x{width}: "
                "evaluate at the original resolution or set crop=None"
            )
        rows, cols = slice(45, 471), slice(41, 601)
    elif crop == "garg":
        rows = slice(int(0.40810811 * height), int(0.99189189 * height))
        cols = slice(int(0.03594771 * width), int(0.96405229 * width))
    else:
        raise ValueError(f"unknown crop {crop!r}; choose None or one of {SUPPORTED_CROPS}")
    in_crop = torch.zeros_like(valid)
    in_crop[rows, cols] = True
    return valid & in_crop


def depth_errors(pred: Tensor, gt: Tensor) -> Tensor:
    """The nine depth scores of one image, in :data:`DEPTH_METRIC_NAMES` order.

    With ratio ``r = max(p / g, g / p)`` and ``e = log(p) - log(g)`` (natural log):

    - ``d1, d2, d3``: share of pixels with ``r < 1.25 ** k``, in [0, 1].
    - ``abs_rel``: mean ``|p - g| / g``; ``sq_rel``: mean ``(p - g) ** 2 / g`` (metres).
    - ``rmse``: ``sqrt(mean((p - g) ** 2))`` in metres; ``rmse_log``: ``sqrt(mean(e ** 2))``.
    - ``log10``: mean ``|log10(p) - log10(g)|``.
    - ``silog``: ``sqrt(mean(e ** 2) - mean(e) ** 2) * 100``, the KITTI benchmark / BTS /
      Monocular-Depth-Estimation-Toolbox convention (no lambda weighting, times 100), not the
      ``sqrt(mean(e ** 2) - 0.85 mean(e) ** 2)`` training loss of Eigen et al.

    Args:
        pred: (N,) positive predicted depths in metres (already clamped to the valid range).
        gt: (N,) positive ground-truth depths in metres, N >= 1.

    Returns:
        (9,) float64 tensor on the device of ``pred``.
    """
    # float64: the silog variance is a difference of two close numbers.
    pred, gt = pred.double(), gt.double()
    ratio = torch.maximum(pred / gt, gt / pred)
    deltas = [(ratio < 1.25**k).double().mean() for k in (1, 2, 3)]
    diff = pred - gt
    log_diff = torch.log(pred) - torch.log(gt)
    # Rounding can push the variance of a constant log error a hair below zero.
    log_variance = ((log_diff**2).mean() - log_diff.mean() ** 2).clamp(min=0)
    return torch.stack(
        [
            *deltas,
            (diff.abs() / gt).mean(),
            (diff**2 / gt).mean(),
            (diff**2).mean().sqrt(),
            (log_diff**2).mean().sqrt(),
            (torch.log10(pred) - torch.log10(gt)).abs().mean(),
            log_variance.sqrt() * 100,
        ]
    )


DEFAULT_RANGE = (1e-3, 10.0)
"""(min, max) depth in metres when neither the config nor the dataset gives one (NYU's)."""


def _check_range(min_depth: float, max_depth: float) -> None:
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth} and {max_depth}")


@METRICS.register_module()
class DepthMetric(BaseMetric):
    """Monocular depth metric: d1, d2, d3, abs_rel, sq_rel, rmse, rmse_log, log10, silog.

    Every score is computed **per image** over its valid pixels and then averaged over images,
    as DINOv2's depth evaluation and the Monocular-Depth-Estimation-Toolbox do (dinov2 issue
    #484); pooling all pixels of the dataset gives different numbers. Valid pixels have
    ``min_depth < gt < max_depth`` and lie inside ``crop`` (:func:`depth_eval_mask`);
    predictions are clamped to ``[min_depth, max_depth]`` first. Units follow the toolbox: the
    deltas, abs_rel, rmse_log and log10 are plain ratios (not percent), sq_rel and rmse are in
    metres, silog is times 100 (:func:`depth_errors`).

    ``process`` keeps one (9,) vector per image, never the maps, so that distributed evaluation
    gathers little data. An image without a valid ground-truth pixel is skipped with a warning
    naming its ``img_path`` and counted in ``num_skipped``, rather than turning a mean into NaN.

    Typical settings: NYU ``min_depth=1e-3, max_depth=10, crop='eigen'``; KITTI
    ``min_depth=1e-3, max_depth=80, crop='garg'``.

    Args:
        min_depth: metres, lower bound of valid ground truth and of predictions; ``None``: the
            dataset's ``metainfo['min_depth']`` when it has one (``NYUDepthDataset`` does),
            else 1e-3.
        max_depth: metres, upper bound likewise; ``None``: ``metainfo['max_depth']``, else 10.
        crop: ``None``, ``'eigen'`` or ``'garg'``.
        collect_device: ``'cpu'`` or ``'gpu'``, where ranks gather their results.
        prefix: prepended to the metric names as ``'{prefix}/abs_rel'``.
        collect_dir: shared folder used to gather results with ``collect_device='cpu'``;
            ``None`` lets MMEngine create one under ``./.dist_test``.
    """

    # Depth scores are reported unprefixed ('abs_rel'), like the segmentation ones.
    default_prefix = ""

    def __init__(
        self,
        min_depth: float | None = None,
        max_depth: float | None = None,
        crop: str | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        _check_range(
            DEFAULT_RANGE[0] if min_depth is None else min_depth,
            DEFAULT_RANGE[1] if max_depth is None else max_depth,
        )
        if crop is not None and crop not in SUPPORTED_CROPS:
            raise ValueError(f"unknown crop {crop!r}; choose None or one of {SUPPORTED_CROPS}")
        self._given_range = (min_depth, max_depth)
        self.crop = crop

    @property
    def min_depth(self) -> float:
        """Lower bound in metres: given, else the dataset's, else 1e-3."""
        return self._bound(0)

    @property
    def max_depth(self) -> float:
        """Upper bound in metres: given, else the dataset's, else 10."""
        return self._bound(1)

    def _bound(self, index: int) -> float:
        given = self._given_range[index]
        if given is not None:
            return given
        key = ("min_depth", "max_depth")[index]
        return float((self.dataset_meta or {}).get(key, DEFAULT_RANGE[index]))

    def process(self, data_batch: Any, data_samples: Sequence[Mapping[str, Any]]) -> None:
        """Append one (9,) float64 score vector per image (``None`` if skipped) to ``results``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: per-image dicts (``DenseDataSample.to_dict()``) with
                ``pred_depth_map`` and ``gt_depth_map``: (H, W) float tensors in metres.

        Raises:
            ValueError: a prediction holds NaN or inf, or its shape differs from the ground
                truth's; the message names the sample's ``img_path``.
        """
        for sample in data_samples:
            img_path = sample.get("img_path", "<no img_path>")
            if "pred_depth_map" not in sample and "pred_disparity_map" in sample:
                raise ValueError(
                    f"{img_path}: the model predicts relative disparity (Depth-Anything-V2's "
                    "relative models), not depth in metres; DepthMetric scores metric depth "
                    "only: evaluate a metric model (output_kind='metric_depth')"
                )
            pred, gt = sample["pred_depth_map"], sample["gt_depth_map"]
            if pred.shape != gt.shape or gt.dim() != 2:
                raise ValueError(
                    f"{img_path}: prediction shape {tuple(pred.shape)} and ground-truth shape "
                    f"{tuple(gt.shape)} must be the same (H, W); predict at the original size"
                )
            if not torch.isfinite(pred).all():
                raise ValueError(f"{img_path}: the predicted depth map contains NaN or inf")
            gt = gt.to(pred.device)
            valid = depth_eval_mask(gt, self.min_depth, self.max_depth, self.crop)
            if not valid.any():
                print_log(
                    f"{img_path}: no ground-truth depth in ({self.min_depth}, {self.max_depth}) "
                    f"inside crop {self.crop!r}; image skipped",
                    MMLogger.get_current_instance(),
                    level=logging.WARNING,
                )
                self.results.append(None)
                continue
            clamped = pred[valid].clamp(self.min_depth, self.max_depth)
            self.results.append(depth_errors(clamped, gt[valid]).cpu())

    def compute_metrics(self, results: list[Tensor | None]) -> dict[str, float]:
        """Average the per-image scores over the images that were not skipped.

        Args:
            results: one (9,) score vector per image of the whole dataset, ``None`` if skipped.

        Returns:
            One float per name of :data:`DEPTH_METRIC_NAMES`, plus ``num_skipped`` (images
            without valid ground truth).

        Raises:
            ValueError: every image was skipped.
        """
        kept = [scores for scores in results if scores is not None]
        if not kept:
            raise ValueError(
                f"none of the {len(results)} images has ground-truth depth in "
                f"({self.min_depth}, {self.max_depth}) inside crop {self.crop!r}: check the "
                "depth scale of the dataset and the metric's min_depth, max_depth and crop"
            )
        means = torch.stack(kept).mean(dim=0)
        metrics = {
            name: value.item() for name, value in zip(DEPTH_METRIC_NAMES, means, strict=True)
        }
        metrics["num_skipped"] = len(results) - len(kept)
        return metrics
