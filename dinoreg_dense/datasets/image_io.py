"""Decoding of images and label maps, with errors that name the offending file."""

from pathlib import Path

import numpy as np
from PIL import Image

LABEL_MODES = ("L", "P")


def read_rgb_image(path: Path) -> np.ndarray:
    """Decode an image file as RGB (grayscale and CMYK images are converted).

    Args:
        path: image file (JPEG, PNG, ...).

    Returns:
        (H, W, 3) uint8 RGB array, pixels as stored (EXIF orientation is not applied, so the
        image stays aligned with its label map).

    Raises:
        OSError: the file is missing, truncated or not an image; the message names it.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as err:
        raise OSError(
            f"cannot read image '{path}': {err}. The file is corrupt, truncated or not an image; "
            "re-extract it from the dataset archive."
        ) from err


def read_label_map(path: Path) -> np.ndarray:
    """Decode a single-channel label PNG: grayscale values, or palette indices for mode 'P'.

    Args:
        path: label map file (8-bit grayscale or palette PNG).

    Returns:
        (H, W) uint8 array of the raw values on disk (palette PNGs give their indices, not colours).

    Raises:
        OSError: the file is missing, truncated or not an image; the message names it.
        ValueError: the file is not single-channel 8-bit (e.g. an RGB colour visualisation).
    """
    try:
        with Image.open(path) as label:
            mode = label.mode
            values = np.asarray(label) if mode in LABEL_MODES else None
    except OSError as err:
        raise OSError(
            f"cannot read label map '{path}': {err}. The file is corrupt, truncated or not an "
            "image; re-extract it from the dataset archive."
        ) from err
    if values is None:
        raise ValueError(
            f"label map '{path}' has PIL mode '{mode}'; expected a single-channel 8-bit PNG "
            f"(mode {' or '.join(LABEL_MODES)}) holding class indices. Colour (RGB) annotations "
            "are visualisations: use the index PNGs of the dataset instead."
        )
    return values
