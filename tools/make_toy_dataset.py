"""Write a synthetic toy dataset: segmentation in the ADE20K layout, depth in NYU's or KITTI's,
object boxes in Pascal VOC's (object discovery), or instances in COCO 2017's.

    python tools/make_toy_dataset.py data/toy --num-train 64 --num-val 16 --size 128 128
    python tools/make_toy_dataset.py data/toy_nyu --layout nyu --size 96 128
    python tools/make_toy_dataset.py data/toy_kitti --layout kitti --size 120 400
    python tools/make_toy_dataset.py data/toy_voc_boxes --layout voc-boxes --num-train 12
    python tools/make_toy_dataset.py data/toy_coco --layout coco-instances --num-train 32

Then train on it with ``ADE20KDataset(data_root="data/toy", classes=TOY_CLASSES)`` or
``NYUDepthDataset(data_root="data/toy_nyu", split="train")`` or
``KITTIDepthDataset(data_root="data/toy_kitti", split="train", kb_crop_size=None)``, or discover
objects in it with ``python tools/discover.py configs/toy_discovery_vittiny.py`` (voc-boxes: one
trainval split of --num-train images, --num-val unused).
"""

import argparse

from dinoreg_dense.datasets.toy import TOY_CLASSES, make_toy_ade20k
from dinoreg_dense.datasets.toy_boxes import make_toy_voc_boxes
from dinoreg_dense.datasets.toy_depth import make_toy_kitti, make_toy_nyu
from dinoreg_dense.datasets.toy_instances import TOY_INSTANCE_CLASSES, make_toy_coco_instances


def _make_voc_boxes(out: str, num_train: int, num_val: int, image_size, seed: int) -> str:
    """VOC has one trainval split for discovery: ``num_train`` images, ``num_val`` unused."""
    return make_toy_voc_boxes(out, num_images=num_train, image_size=image_size, seed=seed)


LAYOUTS = {
    "ade20k": (
        make_toy_ade20k,
        (128, 128),
        f"classes {TOY_CLASSES}: use ADE20KDataset(data_root='{{out}}', classes=TOY_CLASSES)",
    ),
    "nyu": (
        make_toy_nyu,
        (96, 128),
        "depth in metres: use NYUDepthDataset(data_root='{out}', split='train' or 'test')",
    ),
    "kitti": (
        make_toy_kitti,
        (120, 400),
        "sparse depth in metres: use KITTIDepthDataset(data_root='{out}', split='train' or "
        "'test', kb_crop_size=None); the 352x1216 benchmark crop needs frames at least that big",
    ),
    "voc-boxes": (
        _make_voc_boxes,
        (96, 128),
        "object boxes in VOC2007's layout (trainval only; every third image is portrait): use "
        "VOCBoxesDataset(data_root='{out}', year=2007) or configs/toy_discovery_vittiny.py",
    ),
    "coco-instances": (
        make_toy_coco_instances,
        (96, 128),
        f"instances of {TOY_INSTANCE_CLASSES} in COCO 2017's layout: use "
        "COCOInstanceDataset(data_root='{out}', split='train' or 'val') and COCOInstanceMetric",
    ),
}


def parse_args() -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder")
    parser.add_argument(
        "--layout",
        choices=sorted(LAYOUTS),
        default="ade20k",
        help="segmentation (ade20k), depth (nyu, kitti), object boxes (voc-boxes) or instances "
        "(coco-instances)",
    )
    parser.add_argument("--num-train", type=int, default=64, help="training images")
    parser.add_argument("--num-val", type=int, default=16, help="validation / test images")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


def main() -> None:
    """Write the dataset and print where it went."""
    args = parse_args()
    make, default_size, usage = LAYOUTS[args.layout]
    written = make(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=tuple(args.size or default_size),
        seed=args.seed,
    )
    counts = (
        f"{args.num_train} trainval"
        if args.layout == "voc-boxes"
        else f"{args.num_train} training and {args.num_val} validation"
    )
    print(f"wrote {counts} images to {written}")
    print(usage.format(out=args.out))


if __name__ == "__main__":
    main()
