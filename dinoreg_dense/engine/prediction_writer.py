"""Predictions as files: label / depth PNGs and side-by-side pictures, for ``tools/test.py``
(:class:`PredictionWriterHook`) and ``tools/infer.py`` (:func:`save_prediction`)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner
from PIL import Image
from torch import nn

from ..registry import HOOKS
from ..structures import DenseDataSample

MILLIMETRES_PER_METRE = 1000
UINT16_MAX = np.iinfo(np.uint16).max
"""65535 mm: the farthest depth a 16-bit millimetre PNG can hold, 65.535 m."""


def depth_to_millimetres(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth in metres -> (H, W) uint16 millimetres, as NYU stores depth.

    Rounded to the nearest millimetre; 0 means no prediction: non-finite values and depths
    under 0.5 mm become 0, and depths beyond 65.535 m saturate at 65535 (a Depther's
    predictions lie within its head's ``[min_depth, max_depth]``, e.g. 1 mm to 10 m).
    """
    depth = np.asarray(depth, dtype=np.float64)
    millimetres = np.round(np.where(np.isfinite(depth), depth, 0) * MILLIMETRES_PER_METRE)
    return np.clip(millimetres, 0, UINT16_MAX).astype(np.uint16)


def depth_range_of(model: nn.Module) -> tuple[float, float] | None:
    """(min, max) metres a depth model's head predicts, the range its pictures are coloured
    over; None for a model of another task. ``model`` may be wrapped (DistributedDataParallel)."""
    head = getattr(model, "module", model).decode_head
    return (head.min_depth, head.max_depth) if hasattr(head, "min_depth") else None


def save_prediction(
    sample: DenseDataSample,
    raw_path: Path | None,
    picture_path: Path | None,
    image: np.ndarray | None = None,
    *,
    dataset_meta: dict | None = None,
    depth_range: tuple[float, float] | None = None,
    alpha: float = 0.5,
) -> None:
    """Write one sample's prediction: depth, relative disparity or segmentation, whichever it has.

    Args:
        sample: holds ``pred_sem_seg`` (H, W), ``pred_depth_map`` (H, W) metres or
            ``pred_disparity_map`` (H, W) relative, and optionally the matching ground truth
            (``gt_sem_seg`` / ``gt_depth_map``), which the picture then shows as a third panel.
        raw_path: PNG of the class index per pixel (uint8; the dataset's own label convention is
            not re-applied), of the depth in millimetres (uint16, see
            :func:`depth_to_millimetres`), or of the disparity scaled per image to 0..65535
            (uint16, see :func:`disparity_to_uint16`); skipped if None.
        picture_path: PNG of image | prediction (| ground truth): class overlays with a legend
            (needs ``dataset_meta`` ``palette``, optionally ``classes``), depth coloured over
            ``depth_range`` with a key in metres, or disparity coloured over its own range;
            skipped if None.
        image: (H, W, 3) uint8 RGB, needed for the picture.
        dataset_meta: the dataset's ``classes`` and ``palette`` (segmentation).
        depth_range: (min, max) metres of the colour map (depth), e.g. the head's range.
        alpha: overlay opacity (segmentation).

    Raises:
        ValueError: a picture is asked for without ``image`` or, for depth, ``depth_range``.
    """
    from ..visualization import save_comparison, save_depth_comparison

    if "pred_disparity_map" in sample:
        kind, pred = "disparity", sample.pred_disparity_map.cpu().numpy()
    elif "pred_depth_map" in sample:
        kind, pred = "depth", sample.pred_depth_map.cpu().numpy()
    else:
        kind, pred = "seg", sample.pred_sem_seg.cpu().numpy()
    if raw_path is not None:
        Path(raw_path).parent.mkdir(parents=True, exist_ok=True)
        to_raw = dict(depth=depth_to_millimetres, disparity=disparity_to_uint16)
        raw = to_raw[kind](pred) if kind in to_raw else pred.astype(np.uint8)
        Image.fromarray(raw).save(raw_path)
    if picture_path is None:
        return
    if image is None or (kind == "depth" and depth_range is None):
        raise ValueError("a picture of the prediction needs the image (and, for depth, a range)")
    if kind == "disparity":
        low, high = float(pred.min()), float(pred.max())
        save_depth_comparison(picture_path, image, pred, low, max(high, low + 1e-6), unit="")
    elif kind == "depth":
        gt = sample.gt_depth_map.cpu().numpy() if "gt_depth_map" in sample else None
        save_depth_comparison(picture_path, image, pred, *depth_range, gt=gt)
    else:
        meta = dataset_meta or {}
        gt = sample.gt_sem_seg.cpu().numpy() if "gt_sem_seg" in sample else None
        save_comparison(
            picture_path,
            image,
            pred,
            gt=gt,
            palette=meta.get("palette"),
            class_names=meta.get("classes"),
            alpha=alpha,
        )


def disparity_to_uint16(disparity: np.ndarray) -> np.ndarray:
    """(H, W) relative disparity -> (H, W) uint16, its own min..max mapped to 0..65535.

    A relative model's output has no unit (it is defined up to scale and shift), so each image is
    stretched over the full range, as Depth-Anything-V2's ``run.py`` normalises its outputs per
    image; larger = nearer. Non-finite values become 0.
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    finite = np.isfinite(disparity)
    if not finite.any():
        return np.zeros(disparity.shape, np.uint16)
    low, high = disparity[finite].min(), disparity[finite].max()
    scaled = (np.where(finite, disparity, low) - low) / max(high - low, 1e-12)
    return np.where(finite, np.round(scaled * UINT16_MAX), 0).astype(np.uint16)


@HOOKS.register_module()
class PredictionWriterHook(Hook):
    """After every test batch, save each image's prediction, for segmentation or depth.

    Args:
        out_dir: if set, ``<stem>.png`` holding the predicted class index per pixel (uint8) or
            depth in millimetres (uint16, 0 = none), as :func:`save_prediction` writes them.
        show_dir: if set, ``<stem>.png`` showing image | prediction | ground truth: class
            overlays with a legend, or coloured depth with a key in metres over the head's
            ``[min_depth, max_depth]``.
        alpha: overlay opacity (segmentation).
    """

    priority = "LOW"

    def __init__(
        self, out_dir: str | None = None, show_dir: str | None = None, alpha: float = 0.5
    ) -> None:
        self.out_dir = Path(out_dir) if out_dir else None
        self.show_dir = Path(show_dir) if show_dir else None
        self.alpha = alpha

    def after_test_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Sequence[DenseDataSample] | None = None,
    ) -> None:
        """Write the files for every sample of the batch."""
        depth_range = depth_range_of(runner.model)
        for sample in outputs or ():
            stem = Path(sample.metainfo.get("img_path", f"{batch_idx:06d}")).stem
            image = None
            if self.show_dir is not None:
                image = np.asarray(Image.open(sample.metainfo["img_path"]).convert("RGB"))
            save_prediction(
                sample,
                self.out_dir / f"{stem}.png" if self.out_dir else None,
                self.show_dir / f"{stem}.png" if self.show_dir else None,
                image,
                dataset_meta=runner.test_evaluator.dataset_meta,
                depth_range=depth_range,
                alpha=self.alpha,
            )
