"""Pascal VOC 2007 / 2012 object boxes for unsupervised object discovery (LOST, TokenCut, CorLoc).

Boxes convention (shared with :func:`dinoreg_dense.discovery.box_iou` and every box target of
:class:`~dinoreg_dense.datasets.base.BaseDenseDataset`): float pixel ``x0, y0, x1, y1`` with the
end exclusive, so a box covering pixel columns ``0 .. W-1`` is ``x0 = 0, x1 = W``. VOC's XML gives
1-based *inclusive* pixel indices (``xmin = 1, xmax = W`` is the whole width), hence::

    x0 = xmin - 1,  y0 = ymin - 1,  x1 = xmax,  y1 = ymax

which is the conversion LOST's ``extract_gt_VOC`` makes (valeoai/LOST ``datasets.py``).

Every object box is kept, "difficult" and "truncated" ones included: that is LOST's default and
the setting of its reported CorLoc (its ``--no_hard`` flag, which drops them and the images left
with none, is the separate "VOC_all" setup of the paper). Each image counts once in CorLoc,
whatever its number of boxes.
"""

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dinoreg_dense.registry import DATASETS

from .base import BaseDenseDataset, find_dataset_root
from .voc import VOC_CLASSES, read_id_list

VOC_OBJECT_CLASSES = VOC_CLASSES[1:]
"""The 20 object classes; a box's label is its index here (no background class)."""
YEARS = (2007, 2012)
VOC_BOXES_LAYOUT = """\
  <data_root>/VOCdevkit/VOC{year}/      (or data_root = VOCdevkit, or VOC{year} itself)
    JPEGImages/<id>.jpg
    Annotations/<id>.xml                 (one <object> with a <bndbox> per object)
    ImageSets/Main/trainval.txt          (one image id per line)"""
HELP = (
    "See docs/discovery.md for the download. To try the code without it, write a toy dataset "
    "in this layout with `python tools/make_toy_dataset.py OUT --layout voc-boxes`."
)


class AnnotationError(ValueError):
    """A VOC XML file that cannot be read as boxes; the message names the file."""


def parse_voc_xml(path: str | Path) -> dict[str, Any]:
    """Image size and object boxes of one VOC annotation file.

    Parsed with the standard library; a file that declares entities (``<!ENTITY``, which VOC's
    files never do) is refused before parsing, so no entity expansion can blow up memory.

    Args:
        path: ``Annotations/<id>.xml``.

    Returns:
        ``dict(size=(height, width), bboxes=(N, 4) float32, names=[N class names],
        difficult=(N,) bool, truncated=(N,) bool)``; boxes in the module's convention (pixel
        ``x0, y0, x1, y1``, end exclusive), i.e. ``xmin - 1, ymin - 1, xmax, ymax``.

    Raises:
        AnnotationError: not XML, entities declared, or a field missing or not a number.
    """
    path = Path(path)
    data = path.read_bytes()
    if b"<!ENTITY" in data:
        raise AnnotationError(f"annotation '{path}' declares XML entities; VOC files have none")
    try:
        root = ET.fromstring(data)
        size = root.find("size")
        width, height = (int(float(size.findtext(key))) for key in ("width", "height"))
        boxes, names, difficult, truncated = [], [], [], []
        for obj in root.iter("object"):
            box = obj.find("bndbox")  # direct child: the person <part> boxes are not objects
            xmin, ymin, xmax, ymax = (
                float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")
            )
            boxes.append((xmin - 1, ymin - 1, xmax, ymax))
            names.append(obj.findtext("name", "").strip())
            difficult.append(obj.findtext("difficult", "0").strip() == "1")
            truncated.append(obj.findtext("truncated", "0").strip() == "1")
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise AnnotationError(
            f"annotation '{path}' is not a VOC annotation (<size> with <width>/<height>, and per "
            f"<object> a <name> and a <bndbox> with numeric xmin/ymin/xmax/ymax): {err}"
        ) from None
    return dict(
        size=(height, width),
        bboxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        names=names,
        difficult=np.asarray(difficult, bool),
        truncated=np.asarray(truncated, bool),
    )


@DATASETS.register_module()
class VOCBoxesDataset(BaseDenseDataset):
    """Pascal VOC 2007 or 2012 images with every object box, for object discovery.

    Items are ``dict(inputs=uint8 (3, H, W), data_samples=DenseDataSample)`` at the size on disk
    with ``gt_instances.bboxes`` (N, 4) float32 pixel ``x0, y0, x1, y1`` (end exclusive; see the
    module docstring for VOC's 1-based inclusive coordinates) and ``labels`` (N,) int64 indices
    into :data:`VOC_OBJECT_CLASSES`; metainfo holds ``image_id`` (``"000005"``). The XML files
    are all read when the dataset is built (a second or two for VOC12's 11,540), so a bad file
    stops the run before any image is processed.

    Args:
        data_root: the folder containing ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC<year>``.
        year: 2007 (trainval: 5,011 images) or 2012 (trainval: 11,540).
        split: a list in ``ImageSets/Main`` (``"trainval"`` is LOST's setting).

    Raises:
        ValueError: ``year`` is not 2007 or 2012, or an object's name is not a VOC class.
        FileNotFoundError: the dataset, the split list, an image or an annotation is missing.
        AnnotationError: an XML file cannot be read, or has a box outside the image size it
            states or an empty one (the message names the file).
    """

    targets: ClassVar[tuple[str, ...]] = ("bboxes",)

    def __init__(
        self,
        data_root: str | Path,
        year: int = 2007,
        split: str = "trainval",
    ) -> None:
        if year not in YEARS:
            raise ValueError(f"year={year!r}: Pascal VOC boxes are read for {YEARS}")
        layout = VOC_BOXES_LAYOUT.format(year=year)
        root = find_dataset_root(
            data_root,
            (f"VOCdevkit/VOC{year}", f"VOC{year}", "."),
            ("JPEGImages", "Annotations", "ImageSets/Main"),
            f"{layout}\n{HELP}",
        )
        list_path = root / "ImageSets" / "Main" / f"{split}.txt"
        if not list_path.is_file():
            raise FileNotFoundError(
                f"split list '{list_path}' does not exist. Expected:\n{layout}\nLOST evaluates "
                "on split='trainval'."
            )
        ids = read_id_list(list_path)
        records, self._annotations = [], {}
        for image_id in ids:
            image_path = root / "JPEGImages" / f"{image_id}.jpg"
            xml_path = root / "Annotations" / f"{image_id}.xml"
            for path, what in ((image_path, "image"), (xml_path, "annotation")):
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{what} '{path}' of image id {image_id} (listed in '{list_path}') is "
                        "missing. Is the dataset fully extracted?"
                    )
            self._annotations[str(xml_path)] = self._read(xml_path)
            records.append(dict(img_path=image_path, ann_path=xml_path, image_id=image_id))
        self.image_sizes = [self._annotations[str(r["ann_path"])]["size"] for r in records]
        """(height, width) of every image as its XML states it (for grouping by size)."""
        super().__init__(
            records,
            pipeline=(),  # discovery sees the image as stored: no resize
            test_mode=True,
            metainfo=dict(classes=VOC_OBJECT_CLASSES, name=f"VOC{year} {split}"),
        )

    @staticmethod
    def _read(xml_path: Path) -> dict[str, Any]:
        parsed = parse_voc_xml(xml_path)
        unknown = sorted(set(parsed["names"]) - set(VOC_OBJECT_CLASSES))
        if unknown:
            raise AnnotationError(
                f"annotation '{xml_path}' has objects named {unknown}; VOC's classes are "
                f"{list(VOC_OBJECT_CLASSES)}"
            )
        height, width = parsed["size"]
        x0, y0, x1, y1 = parsed["bboxes"].T
        bad = (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height) | (x1 <= x0) | (y1 <= y0)
        if bad.any():
            raise AnnotationError(
                f"annotation '{xml_path}' has boxes outside its {width}x{height} <size> or empty: "
                f"{parsed['bboxes'][bad].tolist()} (after the 1-based to 0-based conversion)"
            )
        labels = [VOC_OBJECT_CLASSES.index(name) for name in parsed["names"]]
        return dict(
            size=parsed["size"], bboxes=parsed["bboxes"], labels=np.asarray(labels, np.int64)
        )

    def load_annotations(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
        """``bboxes`` (N, 4) float32 and ``labels`` (N,) int64 of the record's XML file."""
        annotation = self._annotations[str(record["ann_path"])]
        return dict(bboxes=annotation["bboxes"].copy(), labels=annotation["labels"].copy())
