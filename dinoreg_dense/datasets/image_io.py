"""Decoding of images, label maps and depth maps, with errors that name the offending file."""

from pathlib import Path

import numpy as np
from PIL import Image

LABEL_MODES = ("L", "P")
WIDE_INTEGER_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
"""PIL modes of 16-bit PNGs (and of 32-bit integer images): wider than a label map may be."""


def read_rgb_image(path: Path) -> np.ndarray:
    """Decode an image file as RGB (grayscale and CMYK images are converted).

    Args:
        path: image file (JPEG, PNG, ...).

    Returns:
        (H, W, 3) uint8 RGB array, pixels as stored: EXIF orientation is deliberately not
        applied, because annotations (label, depth, instance maps) are aligned with the stored
        pixels, not with the rotated view a photo viewer shows.

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
        ValueError: the file is not single-channel 8-bit: a 16-bit PNG (the message says how to
            convert it when its values fit 8 bits) or an RGB colour visualisation.
    """
    try:
        with Image.open(path) as label:
            mode = label.mode
            values = np.asarray(label) if mode in LABEL_MODES + WIDE_INTEGER_MODES else None
    except OSError as err:
        raise OSError(
            f"cannot read label map '{path}': {err}. The file is corrupt, truncated or not an "
            "image; re-extract it from the dataset archive."
        ) from err
    if mode in WIDE_INTEGER_MODES:
        raise ValueError(wide_label_message(path, mode, int(values.max(initial=0))))
    if values is None:
        raise ValueError(
            f"label map '{path}' has PIL mode '{mode}'; expected a single-channel 8-bit PNG "
            f"(mode {' or '.join(LABEL_MODES)}) holding class indices. Colour (RGB) annotations "
            "are visualisations: use the index PNGs of the dataset instead."
        )
    return values


def wide_label_message(path: Path, mode: str, max_value: int) -> str:
    """Why a 16-bit label map is refused, and how to convert it when its values fit 8 bits."""
    bits = "16-bit" if mode.startswith("I;16") else "16- or 32-bit"
    head = (
        f"label map '{path}' is a {bits} image (PIL mode '{mode}'); label maps must be 8-bit "
        f"(mode {' or '.join(LABEL_MODES)}) holding class indices."
    )
    if max_value < 256:
        convert = (
            f"from PIL import Image; import numpy as np; p = {str(path)!r}; "
            "Image.fromarray(np.asarray(Image.open(p)).astype(np.uint8)).save(p)"
        )
        return (
            f"{head} Its values (at most {max_value}) are class ids below 256: convert it to "
            f'8-bit once, in place, with: python -c "{convert}"'
        )
    return (
        f"{head} Its values go up to {max_value}: a dataset with more than 255 classes is not "
        "supported (or this is not a class-id map, e.g. a depth or instance-id map)."
    )


def read_depth_png(path: Path, depth_scale: float) -> np.ndarray:
    """Decode a 16-bit depth PNG into metres.

    Args:
        path: depth file, integer units of ``1 / depth_scale`` metres (NYU: millimetres, 1000;
            KITTI: 1/256 m, 256).
        depth_scale: stored units per metre.

    Returns:
        (H, W) float32 metres, 0 where the file has 0 (no measurement).

    Raises:
        OSError: the file is truncated or not an image; names it.
        ValueError: the file is not a single-channel 16-bit (or 32-bit integer) image, e.g. an
            8-bit or RGB visualisation; names it and the expected units.
    """
    try:
        with Image.open(path) as depth:
            mode = depth.mode
            values = np.asarray(depth) if mode in WIDE_INTEGER_MODES else None
    except OSError as err:
        raise OSError(
            f"cannot read depth map '{path}': {err}. The file is corrupt, truncated or not an "
            "image; re-extract it from the dataset archive."
        ) from err
    if values is None:
        raise ValueError(
            f"depth map '{path}' is a PIL mode '{mode}' image; depth maps are single-channel "
            f"16-bit PNGs holding metres x {depth_scale:g} (0 = no measurement; NYU: millimetres, "
            "KITTI: metres x 256). An 8-bit or colour file is a visualisation, not the depth: "
            "use the 16-bit depth PNGs of the dataset."
        )
    return (values.astype(np.float32) / depth_scale).astype(np.float32)
