"""A small synthetic segmentation dataset written in the exact ADE20K layout.

Each image shows 1-3 shapes (disc, square, triangle; rotated, partly off-frame, overlapping) on a
noisy, smoothly varying grey background. Every class has its own hue and texture (stripes,
checkerboard, speckles), so a linear head on a tiny randomly initialised ViT learns them in
minutes. Label maps follow ADE20K: 1 = background, 2-4 = shapes, and 0 (unlabelled, ignored)
on a thin band along every class boundary, as in real annotations.
"""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

TOY_CLASSES = ("background", "disc", "square", "triangle")

SPLITS = {"training": "train", "validation": "val"}  # folder -> ADE file name infix
SHAPE_COLOURS = {2: (205, 60, 50), 3: (60, 185, 70), 4: (55, 85, 215)}  # raw label -> mean RGB
COLOUR_JITTER = 12.0
PIXEL_NOISE = 6.0
TEXTURE_AMPLITUDE = 32.0
JPEG_QUALITY = 95


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) float32 in [-1, 1]: sine stripes of random direction and a 5-8 px period."""
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = (x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / rng.uniform(5, 8))
    return np.sin(phase)


def _checkerboard(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) float32 in {-1, 1}: a checkerboard with 3-5 px cells."""
    cell = int(rng.integers(3, 6))
    y, x = np.mgrid[0:height, 0:width]
    return np.where((y // cell + x // cell) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _speckles(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) float32 in {-0.8, 0.8}: sparse bright dots (about one pixel in five)."""
    return np.where(rng.random((height, width)) < 0.2, 1.0, -1.0).astype(np.float32) * 0.8


TEXTURES = {2: _stripes, 3: _checkerboard, 4: _speckles}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB: a low-saturation grey with smooth blotches and fine grain."""
    tone = rng.uniform(70, 170) + rng.uniform(-15, 15, size=3)
    blotches = cv2.resize(
        rng.normal(0, 25, size=(5, 5)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    grain = rng.normal(0, 10, size=(height, width)).astype(np.float32)
    return tone.astype(np.float32) + (blotches + grain)[..., None]


def _shape_mask(rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of one random disc (2), square (3) or triangle (4)."""
    size = rng.uniform(0.15, 0.3) * min(height, width)
    center = rng.uniform((0, 0), (width, height))
    mask = np.zeros((height, width), np.uint8)
    if label == 2:
        cv2.circle(mask, tuple(int(c) for c in center), int(size), 1, thickness=-1)
    else:
        corners = 4 if label == 3 else 3
        angles = rng.uniform(0, 2 * np.pi) + np.arange(corners) * 2 * np.pi / corners
        radius = size * (np.sqrt(2) if label == 3 else 1.5)
        points = center + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def make_toy_sample(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image and its ADE20K-style label map.

    Args:
        rng: the random stream of this sample.
        height, width: image size.

    Returns:
        (image (H, W, 3) uint8 RGB, label (H, W) uint8: 0 unlabelled, 1 background, 2-4 shapes).
    """
    image = _background(rng, height, width)
    label = np.ones((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        shape_label = int(rng.integers(2, 5))
        mask = _shape_mask(rng, shape_label, height, width)
        colour = np.array(SHAPE_COLOURS[shape_label]) + rng.normal(0, COLOUR_JITTER, size=3)
        texture = TEXTURES[shape_label](rng, height, width)[mask]
        image[mask] = colour.astype(np.float32) + TEXTURE_AMPLITUDE * texture[:, None]
        label[mask] = shape_label
    kernel = np.ones((3, 3), np.uint8)
    label[cv2.dilate(label, kernel) != cv2.erode(label, kernel)] = 0
    image += rng.normal(0, PIXEL_NOISE, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), label


def make_toy_ade20k(
    root: str | Path,
    num_train: int = 64,
    num_val: int = 16,
    image_size: tuple[int, int] = (128, 128),
    seed: int = 0,
) -> Path:
    """Write the toy dataset under ``root/ADEChallengeData2016`` in the ADE20K layout.

    Read it with ``ADE20KDataset(data_root=root, classes=TOY_CLASSES)``. Each sample draws from
    its own stream seeded by (seed, split, index), so the output is identical for a seed and the
    validation images do not depend on ``num_train``.

    Args:
        root: output folder (created if needed; existing toy files are overwritten).
        num_train: images in ``training``.
        num_val: images in ``validation``.
        image_size: (H, W) of every image.
        seed: random seed.

    Returns:
        The ``ADEChallengeData2016`` folder.
    """
    dataset_dir = Path(root).expanduser() / "ADEChallengeData2016"
    height, width = image_size
    for split_index, (split, infix) in enumerate(SPLITS.items()):
        image_dir = dataset_dir / "images" / split
        label_dir = dataset_dir / "annotations" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        count = num_train if split == "training" else num_val
        for index in range(1, count + 1):
            rng = np.random.default_rng([seed, split_index, index])
            image, label = make_toy_sample(rng, height, width)
            stem = f"ADE_{infix}_{index:08d}"
            Image.fromarray(image).save(image_dir / f"{stem}.jpg", quality=JPEG_QUALITY)
            Image.fromarray(label).save(label_dir / f"{stem}.png")
    return dataset_dir
