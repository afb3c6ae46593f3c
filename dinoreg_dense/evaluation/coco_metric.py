"""COCO box and mask AP with pycocotools' ``COCOeval``, from per-image instance predictions.

Predictions become COCO's results format (``[{image_id, category_id, bbox: [x, y, w, h], score}]``
for ``bbox``; the same with ``segmentation`` = RLE for ``segm``), which ``COCO.loadRes`` reads
next to the ground-truth json; ``COCOeval`` then gives the 12 standard numbers, of which we report
AP (IoU 0.50:0.95), AP50, AP75 and APs / APm / APl (areas < 32², 32²-96², > 96² pixels), as
fractions in [0, 1] (``COCOeval.stats``; -1 where the ground truth has no object of that kind).
Crowd ground truth is handled by COCOeval (detections matched to it are ignored).
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS

IOU_TYPES = ("bbox", "segm")
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")
"""Names of ``COCOeval.stats[:6]``, in order."""


def _pycocotools() -> tuple[Any, Any, Any]:
    """(COCO, COCOeval, mask module) of pycocotools, or a clear ImportError."""
    try:
        from pycocotools import mask as mask_util
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:
        raise ImportError("COCO AP is computed with pycocotools: pip install pycocotools") from err
    return COCO, COCOeval, mask_util


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """COCO compressed RLEs of (N, H, W) bool / uint8 masks, json-ready.

    pycocotools encodes column-major (Fortran-ordered) (H, W, N) uint8 arrays; its ``counts``
    are bytes, decoded to str here so that ``json.dump`` writes them.

    Returns:
        N dicts ``{"size": [H, W], "counts": str}``.
    """
    _, _, mask_util = _pycocotools()
    if not len(masks):
        return []
    rles = mask_util.encode(np.asfortranarray(np.transpose(masks, (1, 2, 0)).astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def instances_to_coco_results(
    image_id: int,
    labels: np.ndarray,
    scores: np.ndarray,
    bboxes: np.ndarray,
    masks: np.ndarray | None,
    category_ids: Sequence[int],
) -> dict[str, list[dict[str, Any]]]:
    """One image's detections in COCO's results format, per IoU type.

    Args:
        image_id: COCO image id.
        labels: (N,) int contiguous labels, ``category_ids[label]`` = COCO category id.
        scores: (N,) float confidences.
        bboxes: (N, 4) float pixel ``x0, y0, x1, y1`` at the original image size.
        masks: (N, H, W) bool at the original image size, or None (no ``segm`` results).
        category_ids: COCO category id of each label (the dataset's ``metainfo``).

    Returns:
        ``{"bbox": [{image_id, category_id, bbox: [x, y, w, h], score}], "segm": [...]}``; the
        ``segm`` entries add ``segmentation``, a compressed RLE (see :func:`encode_masks`).
    """
    categories = [int(category_ids[int(label)]) for label in labels]
    common = [
        dict(image_id=int(image_id), category_id=category, score=float(score))
        for category, score in zip(categories, scores, strict=True)
    ]
    results: dict[str, list[dict[str, Any]]] = {"bbox": [], "segm": []}
    for entry, (x0, y0, x1, y1) in zip(common, np.asarray(bboxes, np.float64), strict=True):
        results["bbox"].append(dict(entry, bbox=[x0, y0, x1 - x0, y1 - y0]))
    if masks is not None:
        for entry, rle in zip(results["bbox"], encode_masks(np.asarray(masks)), strict=True):
            results["segm"].append(dict(entry, segmentation=rle))
    return results


def coco_evaluate(
    coco_gt: Any, results: list[dict[str, Any]], iou_type: str, image_ids: Sequence[int]
) -> dict[str, float]:
    """AP, AP50, AP75, APs, APm, APl of ``results`` against ``coco_gt`` on ``image_ids``.

    Args:
        coco_gt: ``pycocotools.coco.COCO`` of the ground-truth json.
        results: detections in COCO's results format for ``iou_type``.
        iou_type: ``"bbox"`` or ``"segm"``.
        image_ids: images to evaluate (those that were predicted).

    Returns:
        The six numbers as fractions (``COCOeval.stats[:6]``); all 0.0 without any detection
        (``loadRes`` refuses an empty list; precision is zero then).
    """
    _, COCOeval, _ = _pycocotools()
    if not results:
        return dict.fromkeys(STAT_NAMES, 0.0)
    coco_dt = coco_gt.loadRes(results)
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = list(image_ids)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats, strict=False)}


@METRICS.register_module()
class COCOInstanceMetric(BaseMetric):
    """COCO bbox / segm AP of ``pred_instances``, safe under distributed evaluation.

    ``process`` turns each image's predictions into COCO results (masks RLE-encoded at once, so
    ranks exchange a few hundred bytes per instance, not masks); MMEngine gathers them on every
    rank and :meth:`compute_metrics` runs COCOeval on rank 0 only.

    Args:
        ann_file: ground-truth COCO json; None = the dataset's ``metainfo["ann_file"]``.
        iou_types: any of ``"bbox"``, ``"segm"``.
        outfile_prefix: when set, results are written to ``{outfile_prefix}.{iou_type}.json``.
        collect_device: ``'cpu'`` or ``'gpu'``, where ranks gather their results.
        prefix: prepended to the metric names as ``'{prefix}/bbox_AP'``.
        collect_dir: shared folder used to gather results with ``collect_device='cpu'``.

    Metric names: ``{iou_type}_{AP, AP50, AP75, APs, APm, APl}``, fractions in [0, 1].
    The label -> category id mapping is the dataset's ``metainfo["category_ids"]``.
    """

    default_prefix = "coco"

    def __init__(
        self,
        ann_file: str | Path | None = None,
        iou_types: Sequence[str] = IOU_TYPES,
        outfile_prefix: str | Path | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        unknown = set(iou_types) - set(IOU_TYPES)
        if unknown or not iou_types:
            raise ValueError(f"iou_types must be among {IOU_TYPES}, got {list(iou_types)}")
        _pycocotools()
        self.ann_file = ann_file
        self.iou_types = tuple(iou_types)
        self.outfile_prefix = outfile_prefix

    def _category_ids(self) -> Sequence[int]:
        meta = self.dataset_meta or {}
        if "category_ids" not in meta:
            raise ValueError(
                "COCOInstanceMetric needs the dataset's metainfo['category_ids'] (COCO category id "
                "of each label), as COCOInstanceDataset provides; the Runner passes it as "
                "dataset_meta"
            )
        return meta["category_ids"]

    def process(self, data_batch: Any, data_samples: Sequence[Mapping[str, Any]]) -> None:
        """Append one image's COCO results to ``self.results``.

        Args:
            data_batch: the dataloader batch (unused).
            data_samples: per-image dicts (``DenseDataSample.to_dict()``) with ``image_id`` and
                ``pred_instances``: ``labels`` (N,), ``scores`` (N,), ``bboxes`` (N, 4) pixel
                ``x0, y0, x1, y1`` and ``masks`` (N, H, W) bool at the original image size.
        """
        category_ids = self._category_ids()
        for sample in data_samples:
            pred = sample["pred_instances"]
            arrays = {
                key: pred[key].detach().cpu().numpy() if torch.is_tensor(pred[key]) else pred[key]
                for key in ("labels", "scores", "bboxes", "masks")
                if key in pred
            }
            if "segm" in self.iou_types and "masks" not in arrays:
                raise ValueError("segm AP needs pred_instances.masks (N, H, W)")
            coco = instances_to_coco_results(
                sample["image_id"],
                arrays["labels"],
                arrays["scores"],
                arrays["bboxes"],
                arrays.get("masks") if "segm" in self.iou_types else None,
                category_ids,
            )
            self.results.append(dict(image_id=int(sample["image_id"]), **coco))

    def compute_metrics(self, results: list[dict[str, Any]]) -> dict[str, float]:
        """COCOeval per IoU type over every image that was processed.

        Raises:
            ValueError: no image was evaluated, or there is no ground-truth json.
        """
        if not results:
            raise ValueError("COCO AP of an empty dataset: no image was evaluated")
        ann_file = self.ann_file or (self.dataset_meta or {}).get("ann_file")
        if ann_file is None:
            raise ValueError(
                "COCOInstanceMetric needs the ground-truth json: pass ann_file= or use a dataset "
                "whose metainfo has 'ann_file' (COCOInstanceDataset)"
            )
        COCO, _, _ = _pycocotools()
        if not Path(ann_file).is_file():
            raise FileNotFoundError(f"ground-truth json '{ann_file}' does not exist")
        coco_gt = COCO(str(ann_file))
        image_ids = sorted({result["image_id"] for result in results})
        metrics = {}
        for iou_type in self.iou_types:
            detections = [d for result in results for d in result[iou_type]]
            if self.outfile_prefix is not None:
                path = Path(f"{self.outfile_prefix}.{iou_type}.json")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(detections))
                print_log(f"wrote {len(detections)} {iou_type} results to {path}", "current")
            stats = coco_evaluate(coco_gt, detections, iou_type, image_ids)
            metrics.update({f"{iou_type}_{name}": value for name, value in stats.items()})
        return metrics
