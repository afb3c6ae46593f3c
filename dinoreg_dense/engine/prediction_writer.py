"""Predictions as files: label / depth PNGs, instance json and side-by-side pictures, for
``tools/test.py`` (:class:`PredictionWriterHook`) and ``tools/infer.py``
(:func:`save_prediction`)."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from PIL import Image
from torch import nn

from ..datasets.photos import OUTPUT_SUFFIXES
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


def prediction_key(sample: DenseDataSample) -> str:
    """The prediction a sample holds: a key of ``OUTPUT_SUFFIXES`` (``pred_instances``,
    ``pred_disparity_map``, ``pred_depth_map`` or ``pred_sem_seg``, checked in that order)."""
    for key in ("pred_instances", "pred_disparity_map", "pred_depth_map", "pred_sem_seg"):
        if key in sample:
            return key
    raise ValueError(f"the sample holds no prediction (one of {sorted(OUTPUT_SUFFIXES)})")


def instances_to_json(instances: InstanceData, class_names: Sequence[str] | None) -> dict:
    """One image's ``pred_instances`` as a json-ready dict, best score first.

    Format: ``{"height": H, "width": W, "instances": [{"label": int, "class_name": str | None,
    "score": float, "bbox_xyxy": [x0, y0, x1, y1], "mask": {"size": [H, W], "counts": str}}]}``;
    boxes are pixels at the original image size, end exclusive; ``mask`` is COCO's compressed
    RLE (column-major, as COCO results json), decoded by ``pycocotools.mask.decode(mask)`` to an
    (H, W) uint8 array. Every instance the model kept is listed (Mask2Former: ``top_k``).

    Args:
        instances: ``labels`` (N,), ``scores`` (N,), ``bboxes`` (N, 4), ``masks`` (N, H, W) bool.
        class_names: name of each label (the dataset's ``classes``), or None.
    """
    from ..evaluation.coco_metric import encode_masks

    masks = instances.masks.cpu().numpy()
    scores = instances.scores.float().cpu().numpy()
    order = np.argsort(-scores, kind="stable")
    rles = encode_masks(masks[order])
    records = []
    for index, rle in zip(order, rles, strict=True):
        label = int(instances.labels[index])
        records.append(
            dict(
                label=label,
                class_name=class_names[label] if class_names is not None else None,
                score=float(scores[index]),
                bbox_xyxy=[float(v) for v in instances.bboxes[index].tolist()],
                mask=rle,
            )
        )
    height, width = masks.shape[1:]
    return dict(height=int(height), width=int(width), instances=records)


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
    """Write one sample's prediction: instances, depth, relative disparity or segmentation,
    whichever it has (:func:`prediction_key`).

    Args:
        sample: holds ``pred_instances`` (``labels``, ``scores``, ``bboxes``, ``masks`` at the
            original size), ``pred_sem_seg`` (H, W), ``pred_depth_map`` (H, W) metres or
            ``pred_disparity_map`` (H, W) relative, and optionally the matching ground truth
            (``gt_sem_seg`` / ``gt_depth_map``), which the picture then shows as a third panel.
        raw_path: json of the instances (:func:`instances_to_json`), PNG of the class index per
            pixel (uint8; the dataset's own label convention is not re-applied), of the depth in
            millimetres (uint16, see :func:`depth_to_millimetres`), or of the disparity scaled
            per image to 0..65535 (uint16, see :func:`disparity_to_uint16`); skipped if None.
        picture_path: PNG of image | prediction (| ground truth): instance masks, boxes, class
            names and scores (:func:`~dinoreg_dense.visualization.save_instances`; ``palette``
            optional), class overlays with a legend (needs ``dataset_meta`` ``palette``,
            optionally ``classes``), depth coloured over ``depth_range`` with a key in metres,
            or disparity coloured over its own range; skipped if None.
        image: (H, W, 3) uint8 RGB, needed for the picture.
        dataset_meta: the dataset's ``classes`` and ``palette`` (segmentation, instances).
        depth_range: (min, max) metres of the colour map (depth), e.g. the head's range.
        alpha: overlay opacity (segmentation).

    Raises:
        ValueError: a picture is asked for without ``image`` or, for depth, ``depth_range``.
    """
    from ..visualization import save_comparison, save_depth_comparison, save_instances

    meta = dataset_meta or {}
    if prediction_key(sample) == "pred_instances":
        instances = sample.pred_instances
        if raw_path is not None:
            Path(raw_path).parent.mkdir(parents=True, exist_ok=True)
            record = instances_to_json(instances, meta.get("classes"))
            Path(raw_path).write_text(json.dumps(record))
        if picture_path is not None:
            if image is None:
                raise ValueError("a picture of the prediction needs the image")
            save_instances(
                picture_path,
                image,
                *(instances[k].cpu() for k in ("masks", "bboxes", "labels", "scores")),
                palette=meta.get("palette"),
                class_names=meta.get("classes"),
                alpha=alpha,
            )
        return
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
    """After every test batch, save each image's prediction, for segmentation, depth or instances.

    Args:
        out_dir: if set, ``<stem>.png`` holding the predicted class index per pixel (uint8) or
            depth in millimetres (uint16, 0 = none), or ``<stem>.json`` holding the instances,
            as :func:`save_prediction` writes them.
        show_dir: if set, ``<stem>.png`` showing image | prediction | ground truth: class
            overlays with a legend, coloured depth with a key in metres over the head's
            ``[min_depth, max_depth]``, or instance masks, boxes, names and scores.
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
            raw_suffix = Path(OUTPUT_SUFFIXES[prediction_key(sample)][0]).suffix
            save_prediction(
                sample,
                self.out_dir / f"{stem}{raw_suffix}" if self.out_dir else None,
                self.show_dir / f"{stem}.png" if self.show_dir else None,
                image,
                dataset_meta=runner.test_evaluator.dataset_meta,
                depth_range=depth_range,
                alpha=self.alpha,
            )
