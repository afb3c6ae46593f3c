"""User photos for prediction (``tools/infer.py``): listing, output names, upright pixels.

Unlike dataset images, whose label maps are aligned with the stored pixels, photos are turned
upright by their EXIF orientation, as a photo viewer shows them.
"""

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
OUTPUT_SUFFIXES = {
    "pred_sem_seg": ("_pred.png", "_overlay.png"),
    "pred_depth_map": ("_depth.png", "_depth_color.png"),
    "pred_disparity_map": ("_disparity.png", "_disparity_color.png"),
    "pred_instances": ("_instances.json", "_instances.png"),
}
"""Prediction key of the data sample -> suffixes of (raw prediction, picture) written per photo."""
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What PIL raises for files that are not images, truncated ones and broken EXIF data."""


def is_output(path: Path, out_dir: Path) -> bool:
    """Whether ``path`` is a prediction or picture written by this tool into ``out_dir``."""
    written = path.name.endswith(sum(OUTPUT_SUFFIXES.values(), ()))
    return written and Path(out_dir).resolve() in path.resolve().parents


def list_photos(inputs: list[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """(file, path relative to its INPUT folder) of every photo, each file once, in input order;
    outputs of earlier runs (see :func:`is_output`) are left out.

    Raises:
        FileNotFoundError: an input does not exist, or no photo was found.
    """
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
            raise FileNotFoundError(f"input {item} does not exist")
    if not photos:
        raise FileNotFoundError(
            f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {inputs}"
        )
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
