"""COCO20k: the 19,817 COCO train2014 images on which LOST and TokenCut report CorLoc.

The subset is a list of file names published with LOST (valeoai/LOST,
``datasets/coco_20k_filenames.txt``, lines like ``train2014/COCO_train2014_000000000009.jpg``);
download it from there (docs/discovery.md). Its boxes are those of COCO's
``instances_train2014.json``, read with pycocotools, with crowd regions (``iscrowd=1``) removed as
in LOST. COCO stores boxes as float ``x, y, width, height``; they become pixel ``x0, y0, x1, y1 =
x, y, x + width, y + height`` (end exclusive, the convention of
:func:`dinoreg_dense.discovery.box_iou`). LOST additionally rounds them to integers (at most half
a pixel per side); we keep them exact.
"""

import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dinoreg_dense.registry import DATASETS

from .base import BaseDenseDataset
from .coco_instances import load_coco, xywh_to_xyxy

COCO20K_LAYOUT = """\
  <data_root>/train2014/COCO_train2014_000000000009.jpg ...
  <data_root>/annotations/instances_train2014.json
  <data_root>/coco_20k_filenames.txt     (LOST's list; see docs/discovery.md)"""
HELP = (
    "See docs/discovery.md. To try the code without COCO, "
    "dinoreg_dense.datasets.toy_boxes.make_toy_coco20k writes a small dataset in this layout."
)


def read_image_list(path: str | Path) -> list[int]:
    """COCO image ids of a subset list, in file order, each once.

    Lines are image ids (``9``) or file names or paths whose stem ends in the zero-padded id
    (``train2014/COCO_train2014_000000000009.jpg``, LOST's list); blank lines are skipped.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: a line holds no id, or the list is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"image list '{path}' does not exist. Expected:\n{COCO20K_LAYOUT}\n{HELP}"
        )
    ids: dict[int, None] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        tail = Path(line).stem.rsplit("_", 1)[-1]
        if not tail.isdigit():
            raise ValueError(
                f"{path}, line {number}: '{line}' is neither a COCO image id nor a file name "
                "ending in one (COCO_train2014_000000000009.jpg)"
            )
        ids.setdefault(int(tail))
    if not ids:
        raise ValueError(f"image list '{path}' lists no images")
    return list(ids)


def coco_boxes(
    annotations: list[dict[str, Any]], width: int, height: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Boxes of one image's COCO annotations, crowd regions removed.

    Args:
        annotations: the image's entries of the json's ``annotations`` (``bbox`` = float ``x, y,
            width, height``, ``iscrowd``, ``category_id``).
        width, height: the image's size in pixels (its ``images`` entry).

    Returns:
        (bboxes (N, 4) float32 pixel ``x0, y0, x1, y1`` clipped to the image, category ids (N,)
        int64, number of non-crowd boxes dropped as empty after clipping). COCO has boxes that
        end a fraction of a pixel past the border (rounding), hence the clip.
    """
    boxes, categories, empty = [], [], 0
    for annotation in annotations:
        if annotation.get("iscrowd", 0):
            continue
        box = xywh_to_xyxy(annotation["bbox"], width, height)
        if box[2] <= box[0] or box[3] <= box[1]:
            empty += 1
            continue
        boxes.append(box)
        categories.append(int(annotation["category_id"]))
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(categories, np.int64),
        empty,
    )


@DATASETS.register_module()
class COCO20kDataset(BaseDenseDataset):
    """COCO20k (or any list of COCO images) with its non-crowd boxes, for object discovery.

    Items are ``dict(inputs=uint8 (3, H, W), data_samples=DenseDataSample)`` at the size on disk
    with ``gt_instances.bboxes`` (N, 4) float32 pixel ``x0, y0, x1, y1`` (see the module
    docstring) and ``labels`` (N,) int64 indices into ``metainfo["classes"]`` (COCO's categories
    sorted by id); metainfo holds ``image_id`` (COCO's int id). An image whose boxes are all
    crowd regions keeps N = 0 boxes and counts as a miss in CorLoc, as in LOST.

    Args:
        data_root: folder that relative paths below are read from.
        ann_file: COCO instances json (``instances_train2014.json``).
        image_list: the subset (see :func:`read_image_list`): LOST's ``coco_20k_filenames.txt``.
        img_dir: folder of the images, joined with each image's ``file_name``.

    Raises:
        ImportError: pycocotools is not installed.
        FileNotFoundError: a file or folder is missing, or a listed image id is not in the json.
    """

    targets: ClassVar[tuple[str, ...]] = ("bboxes",)

    def __init__(
        self,
        data_root: str | Path,
        ann_file: str | Path = "annotations/instances_train2014.json",
        image_list: str | Path = "coco_20k_filenames.txt",
        img_dir: str | Path = "train2014",
    ) -> None:
        data_root = Path(data_root).expanduser()
        ann_path, list_path, image_dir = (data_root / p for p in (ann_file, image_list, img_dir))
        coco = load_coco(ann_path, COCO20K_LAYOUT, HELP)
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"folder '{image_dir}' does not exist. Expected:\n{COCO20K_LAYOUT}\n{HELP}"
            )
        ids = read_image_list(list_path)
        unknown = [i for i in ids if i not in coco.imgs]
        if unknown:
            raise FileNotFoundError(
                f"{len(unknown)} image ids of '{list_path}' are not in '{ann_path}' (first: "
                f"{unknown[:3]}); COCO20k's list names train2014 images: is ann_file "
                "instances_train2014.json?"
            )
        category_ids = sorted(coco.cats)
        label_of = {category: label for label, category in enumerate(category_ids)}
        records, self._annotations, self.image_sizes, dropped = [], {}, [], 0
        for image_id in ids:
            info = coco.imgs[image_id]
            bboxes, categories, empty = coco_boxes(
                coco.imgToAnns.get(image_id, []), int(info["width"]), int(info["height"])
            )
            dropped += empty
            labels = np.asarray([label_of[c] for c in categories], np.int64)
            self._annotations[image_id] = dict(bboxes=bboxes, labels=labels)
            self.image_sizes.append((int(info["height"]), int(info["width"])))
            records.append(dict(img_path=image_dir / info["file_name"], image_id=image_id))
        missing = [r["img_path"] for r in records if not Path(r["img_path"]).is_file()]
        if missing:
            raise FileNotFoundError(
                f"image '{missing[0]}' is missing ({len(missing)} of {len(records)} listed "
                f"images are). Expected:\n{COCO20K_LAYOUT}"
            )
        if dropped:
            print(
                f"COCO20kDataset: {dropped} boxes empty after clipping were left out",
                file=sys.stderr,
            )
        super().__init__(
            records,
            pipeline=(),  # discovery sees the image as stored: no resize
            test_mode=True,
            metainfo=dict(
                classes=tuple(coco.cats[c]["name"] for c in category_ids),
                category_ids=tuple(category_ids),
                name=f"COCO {Path(image_list).stem}",
            ),
        )

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``bboxes`` (N, 4) float32 and ``labels`` (N,) int64 of the record's image."""
        annotation = self._annotations[record["image_id"]]
        return {key: value.copy() for key, value in annotation.items()}
