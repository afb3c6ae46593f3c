"""COCO instance segmentation (``instances_{train,val}2017.json``) read with pycocotools.

Annotations become the instance targets of :class:`~dinoreg_dense.datasets.base.BaseDenseDataset`:

- masks: every ``segmentation`` (polygons, compressed RLE, or the uncompressed RLE COCO uses for
  crowds) decoded by ``COCO.annToMask`` to (H, W) uint8;
- boxes: COCO's float ``x, y, width, height`` -> pixel ``x0, y0, x1, y1 = x, y, x + w, y + h``
  (end exclusive), clipped to the image (COCO boxes can end a fraction of a pixel past it);
- labels: category ids (1..90 with gaps in COCO) -> contiguous ``0..K-1`` in increasing id order;
  ``metainfo["category_ids"][label]`` maps back, which :class:`~dinoreg_dense.evaluation.
  COCOInstanceMetric` uses to write results.

Crowd regions (``iscrowd=1``) are left out of the training targets, as in Mask2Former /
detectron2 (``annotations_to_instances`` keeps ``iscrowd == 0`` only); :meth:`COCOInstanceDataset.
crowd_mask` gives their union for a loss that wants to ignore them. Evaluation reads the json
itself: ``COCOeval`` matches detections to crowd regions as "ignore", so they need no handling
here. Non-crowd annotations whose clipped box or mask is empty (a handful in COCO) are dropped.

Images without a non-crowd annotation are skipped in training (``filter_empty=None`` follows
``test_mode``), as detectron2's ``filter_images_with_only_crowd_annotations`` does for
Mask2Former; in test mode every image of the json is kept, since COCOeval scores detections on
images without objects as false positives.
"""

import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dinoreg_dense.registry import DATASETS

from .base import BaseDenseDataset

COCO_INSTANCES_LAYOUT = """\
  <data_root>/annotations/instances_train2017.json
  <data_root>/annotations/instances_val2017.json
  <data_root>/train2017/000000000009.jpg ...
  <data_root>/val2017/000000000139.jpg ..."""
HELP = (
    "See docs/datasets.md. To try the code without COCO, write a toy dataset in this layout "
    "with `python tools/make_toy_dataset.py OUT --layout coco-instances` "
    "(dinoreg_dense.datasets.toy_instances.make_toy_coco_instances)."
)


def load_coco(
    ann_file: str | Path, layout: str = COCO_INSTANCES_LAYOUT, help_text: str = HELP
) -> Any:
    """A ``pycocotools.coco.COCO`` index of a COCO json.

    Args:
        ann_file: path of the json.
        layout: the expected tree, quoted when the file is missing.
        help_text: where to read more / how to write a toy dataset, quoted then too.

    Raises:
        ImportError: pycocotools is not installed.
        FileNotFoundError: the file does not exist.
    """
    try:
        from pycocotools.coco import COCO
    except ImportError as err:
        raise ImportError(
            "COCO annotations are read with pycocotools: pip install pycocotools"
        ) from err
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(
            f"annotation file '{ann_file}' does not exist. Expected:\n{layout}\n{help_text}"
        )
    return COCO(str(ann_file))


def xywh_to_xyxy(bbox: Any, width: int, height: int) -> np.ndarray:
    """(4,) float32 pixel ``x0, y0, x1, y1`` of a COCO ``[x, y, w, h]`` box clipped to the image."""
    x, y, w, h = (float(v) for v in bbox)
    return np.clip([x, y, x + w, y + h], 0, [width, height, width, height]).astype(np.float32)


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 tight pixel ``x0, y0, x1, y1`` (end exclusive) of (N, H, W) masks.

    An empty mask gives ``(0, 0, 0, 0)``.
    """
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, mask in enumerate(masks):
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        if len(rows):
            boxes[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return boxes


@DATASETS.register_module()
class COCOInstanceDataset(BaseDenseDataset):
    """COCO instances: images with labels, boxes and masks of their non-crowd objects.

    Items are ``dict(inputs=uint8 (3, H, W), data_samples=DenseDataSample)`` with
    ``gt_instances`` (``labels`` (N,) int64 in ``0..K-1``, ``bboxes`` (N, 4) float32 pixel
    ``x0, y0, x1, y1``, ``masks`` (N, H, W) bool); metainfo holds ``image_id`` (COCO's int id).
    In training the pipeline moves masks and boxes together; afterwards each box is recomputed as
    the tight box of its mask and instances whose mask left the crop are dropped (mmdet's
    ``RandomCrop(recompute_bbox=True)`` + ``FilterAnnotations(by_mask=True)`` in Mask2Former's
    large-scale-jitter recipe): a clipped box of a triangle is not the box of what is left of it.

    ``metainfo``: ``classes`` (category names by label), ``category_ids`` (COCO id by label),
    ``ann_file`` (absolute path of the json, the metric's ground truth).

    Args:
        data_root: folder that the relative paths below are read from.
        split: ``"train"`` or ``"val"``: default ``ann_file`` ``annotations/instances_{split}2017
            .json`` and ``img_dir`` ``{split}2017``.
        ann_file: COCO instances json, overriding the split's.
        img_dir: folder of the images (joined with each ``file_name``), overriding the split's.
        pipeline: transform configs (see ``build_pipeline``).
        test_mode: transform the image only; annotations stay at the size on disk.
        filter_empty: skip images without a non-crowd object; None = ``not test_mode``.

    Raises:
        ImportError: pycocotools is not installed.
        FileNotFoundError: the json, the image folder or an image is missing; the message names it.
    """

    targets: ClassVar[tuple[str, ...]] = ("bboxes", "masks")

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        ann_file: str | Path | None = None,
        img_dir: str | Path | None = None,
        pipeline: list[dict] | tuple = (),
        test_mode: bool = False,
        filter_empty: bool | None = None,
    ) -> None:
        data_root = Path(data_root).expanduser()
        ann_path = (data_root / (ann_file or f"annotations/instances_{split}2017.json")).resolve()
        image_dir = data_root / (img_dir or f"{split}2017")
        self.coco = load_coco(ann_path)
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"image folder '{image_dir}' does not exist. Expected:\n{COCO_INSTANCES_LAYOUT}\n"
                f"{HELP}"
            )
        category_ids = sorted(self.coco.cats)
        self.label_of = {category: label for label, category in enumerate(category_ids)}
        filter_empty = not test_mode if filter_empty is None else filter_empty
        records = []
        for image_id in sorted(self.coco.imgs):
            objects = [a for a in self.coco.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
            if filter_empty and not objects:
                continue
            info = self.coco.imgs[image_id]
            records.append(dict(img_path=image_dir / info["file_name"], image_id=image_id))
        missing = [r["img_path"] for r in records if not r["img_path"].is_file()]
        if missing:
            raise FileNotFoundError(
                f"image '{missing[0]}' is missing ({len(missing)} of {len(records)} images of "
                f"'{ann_path}' are). Expected:\n{COCO_INSTANCES_LAYOUT}"
            )
        skipped = len(self.coco.imgs) - len(records)
        if skipped:
            print(
                f"COCOInstanceDataset: {skipped} of {len(self.coco.imgs)} images without a "
                f"non-crowd object skipped ('{ann_path.name}', filter_empty=True)",
                file=sys.stderr,
            )
        super().__init__(
            records,
            pipeline=pipeline,
            test_mode=test_mode,
            metainfo=dict(
                classes=tuple(self.coco.cats[c]["name"] for c in category_ids),
                category_ids=tuple(category_ids),
                ann_file=str(ann_path),
            ),
        )

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``labels`` (N,) int64, ``bboxes`` (N, 4) float32 and ``masks`` (N, H, W) uint8 of the
        record's non-crowd objects, in the json's order, at the image's size on disk."""
        info = self.coco.imgs[record["image_id"]]
        width, height = int(info["width"]), int(info["height"])
        labels, boxes, masks = [], [], []
        for annotation in self.coco.imgToAnns.get(record["image_id"], []):
            if annotation.get("iscrowd", 0):
                continue
            box = xywh_to_xyxy(annotation["bbox"], width, height)
            mask = self.coco.annToMask(annotation)
            if box[2] <= box[0] or box[3] <= box[1] or not mask.any():
                continue
            labels.append(self.label_of[annotation["category_id"]])
            boxes.append(box)
            masks.append(mask)
        return dict(
            labels=np.asarray(labels, np.int64),
            bboxes=np.asarray(boxes, np.float32).reshape(-1, 4),
            masks=np.asarray(masks, np.uint8).reshape(-1, height, width),
        )

    def crowd_mask(self, index: int) -> np.ndarray:
        """(H, W) bool union of sample ``index``'s crowd regions at the size on disk."""
        image_id = self.records[index]["image_id"]
        info = self.coco.imgs[image_id]
        crowd = np.zeros((int(info["height"]), int(info["width"])), bool)
        for annotation in self.coco.imgToAnns.get(image_id, []):
            if annotation.get("iscrowd", 0):
                crowd |= self.coco.annToMask(annotation).astype(bool)
        return crowd

    def _transformed_targets(
        self, annotations: dict[str, np.ndarray], out: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        result = super()._transformed_targets(annotations, out)
        keep = result["masks"].reshape(len(result["masks"]), -1).any(axis=1)
        result = {key: value[keep] for key, value in result.items()}
        result["bboxes"] = masks_to_boxes(result["masks"])
        return result
