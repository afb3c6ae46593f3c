"""Extract multi-layer patch features from an image and save a PCA picture of each layer.

    python tools/extract_features.py [IMAGE] [--arch vits14_reg4] [--checkpoint PATH]
        [--layers -4 -3 -2 -1] [--size 518] [--out features_pca.png]

Without IMAGE it uses scikit-image's astronaut photo.
"""

import argparse

import numpy as np
import torch
from PIL import Image

from dinoreg_dense.datasets.normalization import resize_short_side
from dinoreg_dense.engine.launch import backbone_options_are, run_tool
from dinoreg_dense.registry import MODELS
from dinoreg_dense.visualization import save_feature_pca


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", nargs="?", help="image file (default: skimage astronaut)")
    parser.add_argument(
        "--arch",
        default="vits14_reg4",
        help="backbone preset, or 'auto' to take it from the checkpoint (config.json, our "
        "metadata, DINOv3 files, else the tensor shapes)",
    )
    parser.add_argument("--checkpoint", help="pretrained weights (any supported format)")
    parser.add_argument("--layers", type=int, nargs="+", default=[-4, -3, -2, -1])
    parser.add_argument("--size", type=int, default=518, help="shorter side after resizing")
    parser.add_argument("--out", default="features_pca.png")
    return parser.parse_args()


def load_image(path: str | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    if path is None:
        from skimage import data

        return data.astronaut()
    return np.array(Image.open(path).convert("RGB"))  # a writable copy for torch.from_numpy


def main() -> None:
    args = parse_args()
    image = load_image(args.image)
    arch = None if args.arch == "auto" else args.arch
    with backbone_options_are(
        "On this command line, model.backbone.arch is --arch (--arch auto reads the file)."
    ):
        backbone = MODELS.build(
            dict(type="RegisterViT", arch=arch, checkpoint=args.checkpoint, frozen=True)
        )
    if args.checkpoint is None:
        print("WARNING: no --checkpoint given, the backbone has RANDOM weights.")
    _, x = resize_short_side(image, args.size)
    with torch.inference_mode():
        features = backbone.forward_intermediates(x, out_indices=args.layers)
    print(f"input {tuple(x.shape)}, padding (bottom, right) {features.padding}")
    for index, patch_map in zip(features.indices, features.patch_maps, strict=True):
        print(f"  block {index:2d}: patch map {tuple(patch_map.shape)}")
    if features.cls_tokens is not None:
        print(f"  cls token {tuple(features.cls_tokens[-1].shape)}")
    print(f"  register tokens {tuple(features.register_tokens[-1].shape)}")
    save_feature_pca(
        args.out,
        image,
        [m[0] for m in features.patch_maps],
        titles=[f"block {i}" for i in features.indices],
    )
    print(f"saved PCA picture to {args.out}")


if __name__ == "__main__":
    run_tool(main)
