"""Cityscapes fine annotations: 19 evaluation classes (train ids), 255 = ignore."""

from collections.abc import Sequence
from pathlib import Path

from dinoreg_dense.registry import DATASETS

from .base import check_pairs_exist, find_dataset_root
from .seg_base import BaseSegDataset

# The 19 classes with a train id, in train-id order, with cityscapesscripts' official colours.
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
CITYSCAPES_PALETTE = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
    [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
    [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
    [0, 80, 100], [0, 0, 230], [119, 11, 32],
]  # fmt: skip

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelTrainIds.png"
CITYSCAPES_LAYOUT = f"""\
  <data_root>/                       (or the folder containing cityscapes/)
    leftImg8bit/{{train,val}}/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX}
    gtFine/{{train,val}}/<city>/<city>_<seq>_<frame>{LABEL_SUFFIX}"""
CREATE_TRAIN_IDS = (
    "Create the labelTrainIds files from the polygons with cityscapesscripts: `pip install "
    "cityscapesscripts` then `CITYSCAPES_DATASET=<data_root> csCreateTrainIdLabelImgs`."
)


@DATASETS.register_module()
class CityscapesDataset(BaseSegDataset):
    """Cityscapes ``leftImg8bit`` images with ``gtFine`` labelTrainIds label maps.

    Label maps hold train ids 0..18 and 255 for every class not evaluated; no reduce-zero-label.

    Args:
        data_root: the Cityscapes folder (with ``leftImg8bit`` and ``gtFine``), or its parent
            holding ``cityscapes/``.
        split: ``"train"`` (2,975 images) or ``"val"`` (500).
        pipeline: transform configs (see ``dinoreg_dense.datasets.build_pipeline``).
        test_mode: transform the image only; ``gt_sem_seg`` keeps the size on disk.
    """

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict] = (),
        test_mode: bool = False,
    ) -> None:
        root = find_dataset_root(
            data_root, (".", "cityscapes"), ("leftImg8bit", "gtFine"), CITYSCAPES_LAYOUT
        )
        image_dir = root / "leftImg8bit" / split
        images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not images:
            raise FileNotFoundError(
                f"no images (<city>/*{IMAGE_SUFFIX}) in '{image_dir}': the split is missing or "
                f"empty. Expected:\n{CITYSCAPES_LAYOUT}"
            )
        label_dir = root / "gtFine" / split
        pairs = [
            (image, label_dir / image.parent.name / image.name.replace(IMAGE_SUFFIX, LABEL_SUFFIX))
            for image in images
        ]
        check_pairs_exist(pairs, missing_label_hint=CREATE_TRAIN_IDS)
        super().__init__(
            pairs,
            classes=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE,
            pipeline=pipeline,
            test_mode=test_mode,
            reduce_zero_label=False,
            name="Cityscapes",
        )
