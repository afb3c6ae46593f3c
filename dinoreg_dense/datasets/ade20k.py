"""ADE20K SceneParsing (ADEChallengeData2016): 150 classes, raw label 0 = unlabelled."""

from collections.abc import Sequence
from pathlib import Path

from dinoreg_dense.registry import DATASETS

from .base import check_pairs_exist, find_dataset_root
from .palette import voc_colormap
from .seg_base import BaseSegDataset

# Short names (first synonym) of objectInfo150, in label order 1..150.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing",
    "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink",
    "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case",
    "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth",
    "television receiver", "airplane", "dirt track", "apparel", "pole", "land", "bannister",
    "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen",
    "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass",
    "clock", "flag",
)  # fmt: skip

ADE20K_LAYOUT = """\
  <data_root>/ADEChallengeData2016/      (or data_root = this folder)
    images/training/ADE_train_00000001.jpg ...
    images/validation/ADE_val_00000001.jpg ...
    annotations/training/ADE_train_00000001.png ...   (uint8, 0 = unlabelled, 1..150 = classes)
    annotations/validation/ADE_val_00000001.png ..."""


def generated_palette(num_classes: int) -> list[list[int]]:
    """VOC colormap without its black entry, so no class looks like "unlabelled".

    Returns:
        ``num_classes`` lists ``[r, g, b]``.
    """
    return voc_colormap(num_classes + 1)[1:]


@DATASETS.register_module()
class ADE20KDataset(BaseSegDataset):
    """ADE20K scene parsing, ``ADEChallengeData2016/{images,annotations}/{split}``.

    Raw label 0 (unlabelled) becomes ``IGNORE_INDEX`` (255) and label k becomes train id k - 1
    (reduce-zero-label).

    Args:
        data_root: the folder containing ``ADEChallengeData2016``, or that folder itself.
        split: ``"training"`` (20,210 images) or ``"validation"`` (2,000).
        pipeline: transform configs (see ``dinoreg_dense.datasets.build_pipeline``).
        test_mode: transform the image only; ``gt_sem_seg`` keeps the size on disk.
        classes: class names replacing the 150 ADE20K ones, for datasets in this layout with
            other labels (e.g. the toy dataset's ``TOY_CLASSES``); raw labels must be
            0..len(classes).
    """

    def __init__(
        self,
        data_root: str | Path,
        split: str = "training",
        pipeline: Sequence[dict] = (),
        test_mode: bool = False,
        classes: Sequence[str] | None = None,
    ) -> None:
        root = find_dataset_root(
            data_root, ("ADEChallengeData2016", "."), ("images", "annotations"), ADE20K_LAYOUT
        )
        image_dir = root / "images" / split
        if not image_dir.is_dir():
            splits = sorted(p.name for p in (root / "images").iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"split folder '{image_dir}' does not exist (found splits: {splits}); "
                "ADE20K's splits are 'training' and 'validation'."
            )
        images = sorted(image_dir.glob("*.jpg"))
        if not images:
            raise FileNotFoundError(
                f"no images (*.jpg) in '{image_dir}': the split is empty. Expected:\n"
                f"{ADE20K_LAYOUT}"
            )
        pairs = [(image, root / "annotations" / split / f"{image.stem}.png") for image in images]
        check_pairs_exist(pairs)
        classes = ADE20K_CLASSES if classes is None else tuple(classes)
        super().__init__(
            pairs,
            classes=classes,
            palette=generated_palette(len(classes)),
            pipeline=pipeline,
            test_mode=test_mode,
            reduce_zero_label=True,
            name="ADE20K",
        )
