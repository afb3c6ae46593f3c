"""Pascal VOC 2012 segmentation: 21 classes (background + 20), optional SBD augmented labels."""

from collections.abc import Sequence
from pathlib import Path

from dinoreg_dense.registry import DATASETS

from .base import check_pairs_exist, find_dataset_root
from .palette import voc_colormap
from .seg_base import BaseSegDataset

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip

SBD_LIST = "train_aug.txt"
VOC_LAYOUT = f"""\
  <data_root>/VOCdevkit/VOC2012/      (or data_root = VOCdevkit, or VOC2012 itself)
    JPEGImages/2007_000032.jpg ...
    SegmentationClass/2007_000032.png ...   (palette PNGs: index = class, 255 = border/ignore)
    ImageSets/Segmentation/train.txt, val.txt   (one image id per line)
    SegmentationClassAug/*.png                  (optional, SBD labels, use_sbd_aug=True)
    ImageSets/Segmentation/{SBD_LIST}           (optional, the 10,582 SBD training ids)"""


def read_id_list(path: Path, hint: str = "") -> list[str]:
    """Image ids of a VOC split list, one per line.

    Lines are bare ids (``2007_000032``: VOC's and mmseg's lists) or DeepLab's
    ``/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png``.

    Args:
        path: the list file.
        hint: appended to the error when the file is missing.

    Returns:
        The ids in file order.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file lists no ids.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"split list '{path}' does not exist. Expected:\n{VOC_LAYOUT}\n{hint}".rstrip()
        )
    ids = [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split list '{path}' is empty: the split has no images.")
    return ids


@DATASETS.register_module()
class VOCDataset(BaseSegDataset):
    """Pascal VOC 2012 semantic segmentation.

    Label maps are palette PNGs whose indices are the train ids (0 = background, 255 = object
    borders and difficult regions, ignored); no reduce-zero-label.

    Args:
        data_root: the folder containing ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC2012``.
        split: name of a list in ``ImageSets/Segmentation`` (``"train"`` 1,464 images,
            ``"val"`` 1,449).
        pipeline: transform configs (see ``dinoreg_dense.datasets.build_pipeline``).
        test_mode: transform the image only; ``gt_sem_seg`` keeps the size on disk.
        use_sbd_aug: train on the 10,582 "train_aug" images labelled by SBD (Hariharan et al.
            2011): ids from ``ImageSets/Segmentation/train_aug.txt``, labels from
            ``SegmentationClassAug`` (see docs/datasets.md). Only for ``split="train"``.
    """

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict] = (),
        test_mode: bool = False,
        use_sbd_aug: bool = False,
    ) -> None:
        if use_sbd_aug and split != "train":
            raise ValueError(
                f"use_sbd_aug=True replaces the 'train' split; got split='{split}'. Evaluate on "
                "'val' with use_sbd_aug=False (its labels are the official SegmentationClass)."
            )
        root = find_dataset_root(
            data_root,
            ("VOCdevkit/VOC2012", "VOC2012", "."),
            ("JPEGImages", "ImageSets/Segmentation"),
            VOC_LAYOUT,
        )
        list_dir = root / "ImageSets" / "Segmentation"
        label_dir = root / ("SegmentationClassAug" if use_sbd_aug else "SegmentationClass")
        if not label_dir.is_dir():
            raise FileNotFoundError(
                f"label folder '{label_dir}' does not exist. Expected:\n{VOC_LAYOUT}\n"
                "SegmentationClassAug comes from SBD; see docs/datasets.md."
            )
        if use_sbd_aug:
            ids = read_id_list(
                list_dir / SBD_LIST,
                hint="mmseg's tools/dataset_converters/voc_aug.py writes this list as "
                f"trainaug.txt: rename or link it to {SBD_LIST}. See docs/datasets.md.",
            )
        else:
            ids = read_id_list(list_dir / f"{split}.txt")
        pairs = [(root / "JPEGImages" / f"{i}.jpg", label_dir / f"{i}.png") for i in ids]
        check_pairs_exist(pairs)
        super().__init__(
            pairs,
            classes=VOC_CLASSES,
            palette=voc_colormap(len(VOC_CLASSES)),
            pipeline=pipeline,
            test_mode=test_mode,
            reduce_zero_label=False,
            name="Pascal VOC",
        )
