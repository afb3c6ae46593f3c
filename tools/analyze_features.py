"""Draw the registers paper's artifact figures for a backbone: norms, outliers, attention, PCA.

    python tools/analyze_features.py MODEL [IMAGES ...] --out DIR [--checkpoint PATH]
        [--size 518] [--threshold T] [--mad-k 5] [--final-norm] [--threads N]

MODEL is a preset (``vits14``, ``vits14_reg4`` ...; ``auto`` takes the checkpoint's own) or a
config file with ``model.backbone`` or ``backbone``. IMAGES are files, folders, or the words
``astronaut``, ``chelsea``, ``coffee`` (scikit-image's photos, the default). Per image it writes
PNGs into DIR and one ``summary.json`` for all; docs/backbones.md explains them.
"""

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from dinoreg_dense.arch import ARCHS
from dinoreg_dense.datasets.normalization import resize_short_side
from dinoreg_dense.datasets.photos import list_photos, output_names, read_photo
from dinoreg_dense.engine.launch import (
    add_threads_argument,
    apply_num_threads,
    backbone_options_are,
    load_config,
    run_tool,
)
from dinoreg_dense.registry import MODELS
from dinoreg_dense.visualization.artifact_plots import save_analysis_pictures
from dinoreg_dense.visualization.artifacts import PAPER_NORM_THRESHOLD, analyze_features, summarize

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="backbone preset, 'auto', or a config file")
    parser.add_argument("images", nargs="*", default=list(SKIMAGE_PHOTOS))
    parser.add_argument("--checkpoint", help="pretrained weights (any supported format)")
    parser.add_argument("--size", type=int, default=518, help="shorter side after resizing")
    parser.add_argument("--out", required=True, help="folder for the PNGs and summary.json")
    parser.add_argument(
        "--threshold",
        type=float,
        help=f"absolute outlier norm (the paper: {PAPER_NORM_THRESHOLD:g} for DINOv2); default: "
        "median + k * 1.4826 * MAD, at least 2 x median",
    )
    parser.add_argument("--mad-k", type=float, default=5.0, help="k of the default rule")
    parser.add_argument("--final-norm", action="store_true", help="norms after the final LayerNorm")
    add_threads_argument(parser)
    return parser.parse_args()


def backbone_config(model: str, checkpoint: str | None) -> dict:
    """The backbone's config dict from a preset name or a config file."""
    if model.endswith(".py") or Path(model).is_file():
        cfg = load_config(model)
        backbone = cfg.get("model", {}).get("backbone") or cfg.get("backbone")
        if backbone is None:
            raise ValueError(f"config {model} has neither model.backbone nor backbone")
        backbone = backbone.to_dict()
    elif model == "auto" or model in ARCHS:
        backbone = dict(type="RegisterViT", arch=None if model == "auto" else model)
    else:
        raise ValueError(f"'{model}' is neither a config file nor a preset ({', '.join(ARCHS)})")
    if checkpoint is not None:
        backbone["checkpoint"] = checkpoint
    return backbone


def load_images(inputs: list[str], out_dir: Path) -> list[tuple[str, np.ndarray]]:
    """(output name, (H, W, 3) uint8 RGB) of scikit-image photos named by word and of files."""
    from skimage import data

    words = [i for i in inputs if i in SKIMAGE_PHOTOS and not Path(i).exists()]
    images = [(word, getattr(data, word)()) for word in words]
    files = [i for i in inputs if i not in words]
    if files:
        photos = list_photos(files, out_dir)
        names = output_names([relative for _, relative in photos])
        images += [(str(n), read_photo(path)) for n, (path, _) in zip(names, photos, strict=True)]
    return images


def main() -> None:
    args = parse_args()
    apply_num_threads(args.threads)
    # Log-scale tick labels use mathtext; where its STIX fonts are missing matplotlib warns
    # once per glyph size ("findfont: ... Falling back to DejaVu Sans"), which says nothing.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    out_dir = Path(args.out)
    config = backbone_config(args.model, args.checkpoint)
    with backbone_options_are(
        "On this command line, model.backbone.arch is MODEL ('auto' reads the file)."
    ):
        backbone = MODELS.build({**config, "frozen": True})
    random_weights = config.get("checkpoint") is None
    images = load_images(args.images, out_dir)
    summary = {
        "model": {
            "description": backbone.describe(),
            "arch": backbone.arch.to_dict(),
            "num_register_tokens": backbone.num_register_tokens,
            "checkpoint": None if random_weights else str(config["checkpoint"]),
            "random_weights": random_weights,
            "final_norm": args.final_norm,
        },
        "outlier_rule": {
            "threshold": args.threshold,
            "mad_k": args.mad_k,
            "paper_threshold": PAPER_NORM_THRESHOLD,
        },
        "images": {},
    }
    for name, image in images:
        picture, x = resize_short_side(image, args.size)
        analysis = analyze_features(backbone, x, args.final_norm, args.threshold, args.mad_k)
        save_analysis_pictures(out_dir, name, picture, analysis)
        summary["images"][name] = summarize(analysis)
        last = summary["images"][name]["layers"][-1]
        print(
            f"{name}: {tuple(x.shape[-2:])} px, grid {tuple(analysis.norms.shape[-2:])}, last "
            f"block norm median {last['norm_median']:.2f} max {last['norm_max']:.2f}, "
            f"{analysis.outliers.count} outlier tokens (> {analysis.outliers.threshold:.2f})"
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{backbone.describe()}; pictures and summary.json in {out_dir}")
    if random_weights:
        print(
            "WARNING: no checkpoint: the backbone has RANDOM weights, so the pictures show no "
            "artifacts (expected); pass --checkpoint to analyse a trained model."
        )


if __name__ == "__main__":
    run_tool(main)
