"""Segment your own photos with a trained checkpoint.

    python tools/infer.py CONFIG CHECKPOINT INPUT [INPUT ...] [--out-dir DIR]
        [--cfg-options model.test_cfg.flip=True ...] [--threads N]

INPUT is an image file or a folder (searched recursively for .jpg/.jpeg/.png/.bmp/.webp). For each
photo it writes ``<name>_pred.png`` (class index per pixel) and ``<name>_overlay.png`` in DIR,
in the photo's folder relative to its INPUT folder: ``photos/trip/cat.jpg`` -> ``DIR/trip/cat_*``.
``<name>`` is the stem (``cat``); photos whose outputs would share a name keep their extension
(``cat.jpg_*``, ``cat.png_*``), and ``_2``, ``_3``... is added while names still clash (the same
relative path under two INPUT folders). Photos are first turned upright by their EXIF
orientation, as a photo viewer shows them, so predictions and overlays are upright; datasets, in
contrast, use the stored pixels, which their label maps are aligned with. Unreadable files are
skipped with a warning; the exit status is non-zero only when no photo could be read. Files named
``*_pred.png`` or ``*_overlay.png`` inside DIR are outputs of earlier runs, not photos.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from PIL import Image, ImageOps
from tqdm import tqdm

from dinoreg_dense.datasets import build_pipeline
from dinoreg_dense.engine import check_state_dict_shapes, load_run_checkpoint
from dinoreg_dense.engine.launch import add_threads_argument, apply_num_threads, load_config
from dinoreg_dense.registry import MODELS
from dinoreg_dense.structures import SegDataSample
from dinoreg_dense.visualization import save_comparison

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
OUTPUT_SUFFIXES = ("_pred.png", "_overlay.png")
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What PIL raises for files that are not images, truncated ones and broken EXIF data."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config")
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py")
    parser.add_argument(
        "inputs", nargs="+", help="image files or folders; photos are turned upright by EXIF"
    )
    parser.add_argument(
        "--out-dir", default="predictions", help="output folder (default: %(default)s)"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    add_threads_argument(parser)
    return parser.parse_args()


def is_output(path: Path, out_dir: Path) -> bool:
    """Whether ``path`` is a prediction or overlay written by this tool into ``out_dir``."""
    written = path.name.endswith(OUTPUT_SUFFIXES)
    return written and Path(out_dir).resolve() in path.resolve().parents


def list_photos(inputs: list[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to its INPUT folder) of every photo, each file once, in input order;
    outputs of earlier runs (see :func:`is_output`) are left out. Missing paths are errors."""
    photos: dict[Path, tuple[Path, Path]] = {}
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            for path in found:
                if not is_output(path, out_dir):
                    photos.setdefault(path.resolve(), (path, path.relative_to(item)))
        elif item.is_file():
            photos.setdefault(item.resolve(), (item, Path(item.name)))
        else:
            raise SystemExit(f"input {item} does not exist")
    if not photos:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {inputs}")
    return list(photos.values())


def output_names(relative_paths: list[Path]) -> list[Path]:
    """Distinct output names (no suffix) for the photos' relative paths, as the docstring says.

    Names are compared case-insensitively, so no output overwrites another on any file system.
    """
    stems = Counter(str(path.with_suffix("")).casefold() for path in relative_paths)
    taken: set[str] = set()
    names = []
    for path in relative_paths:
        base = path.with_suffix("") if stems[str(path.with_suffix("")).casefold()] == 1 else path
        name, number = base, 1
        while str(name).casefold() in taken:
            number += 1
            name = base.with_name(f"{base.name}_{number}")
        taken.add(str(name).casefold())
        names.append(name)
    return names


def read_photo(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a photo, turned upright by its EXIF orientation."""
    with Image.open(path) as photo:
        return np.asarray(ImageOps.exif_transpose(photo).convert("RGB"))


def main() -> None:
    args = parse_args()
    apply_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get("default_scope", "dinoreg_dense"))
    out_dir = Path(args.out_dir)
    photos = list_photos(args.inputs, out_dir)
    checkpoint = load_run_checkpoint(args.checkpoint)
    model = MODELS.build(cfg.model)
    check_state_dict_shapes(model, checkpoint["state_dict"], args.checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    meta = checkpoint.get("meta", {}).get("dataset_meta") or {}
    pipeline = build_pipeline(cfg.test_dataloader.dataset.pipeline)
    names = output_names([relative for _, relative in photos])
    jobs = [(path, name) for (path, _), name in zip(photos, names, strict=True)]
    skipped = []
    for path, name in tqdm(jobs, desc="segmenting", unit="img"):
        try:
            image = read_photo(path)
        except UNREADABLE as err:
            tqdm.write(f"warning: skipping '{path}': not a readable image ({err})", file=sys.stderr)
            skipped.append(path)
            continue
        resized = pipeline(image=image)["image"]
        sample = SegDataSample(metainfo=dict(img_path=str(path), ori_shape=image.shape[:2]))
        tensor = torch.from_numpy(np.array(resized)).permute(2, 0, 1)
        batch = dict(inputs=[tensor], data_samples=[sample])
        with torch.inference_mode():
            pred = model.test_step(batch)[0].pred_sem_seg.numpy().astype(np.uint8)
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred).save(target.with_name(f"{target.name}_pred.png"))
        save_comparison(
            target.with_name(f"{target.name}_overlay.png"),
            image,
            pred,
            palette=meta.get("palette"),
            class_names=meta.get("classes"),
        )
    written = len(photos) - len(skipped)
    report = f"wrote {written} predictions and overlays to {out_dir}"
    if skipped:
        report += f"; skipped {len(skipped)} unreadable file(s) (see the warnings above)"
    if not written:
        raise SystemExit(
            f"no prediction: none of the {len(photos)} files could be read as an image"
        )
    print(report)


if __name__ == "__main__":
    main()
