"""Small object-discovery datasets with known boxes, in Pascal VOC's and COCO20k's exact layouts.

Each image shows one or two salient shapes (disc, ellipse or rectangle in a saturated, smoothly
shaded colour) on a texture from scikit-image's bundled photos (grass, gravel, brick), tinted
and grey. Every shape's box is the tight box of its pixels, so the ground truth is exact; the
second shape of an image is smaller than the first. Every third image is portrait (its size
transposed), so a dataset holds images of two sizes, as real ones hold many.
"""

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

TEXTURES = ("grass", "gravel", "brick")
TOY_OBJECT_NAMES = ("bird", "car", "cat", "dog", "sheep")
"""VOC class names given to the toy shapes, so VOC's loader reads them (they are just shapes)."""
JPEG_QUALITY = 95
Box = tuple[int, int, int, int]


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32: a random crop of a scikit-image texture, tinted, at 40-60 % contrast."""
    from skimage import data

    texture = getattr(data, TEXTURES[int(rng.integers(len(TEXTURES)))])().astype(np.float32)
    side = int(rng.integers(128, 257))
    top, left = (int(rng.integers(0, 512 - side)) for _ in range(2))
    crop = cv2.resize(texture[top : top + side, left : left + side], (width, height))
    tint = rng.uniform(90, 160) + rng.uniform(-20, 20, size=3)
    return tint.astype(np.float32) + rng.uniform(0.4, 0.6) * (crop[..., None] - crop.mean())


def _shape(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """(H, W) bool mask of a disc, ellipse or rectangle about ``scale`` of the shorter side."""
    size = scale * min(height, width)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    mask = np.zeros((height, width), np.uint8)
    kind = int(rng.integers(3))
    axes = (int(size / 2), int(size / 2 * (1 if kind == 0 else rng.uniform(0.5, 0.9))))
    if kind < 2:
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, angle, 0, 360, 1, thickness=-1)
    else:
        cv2.rectangle(
            mask,
            (int(cx - axes[0]), int(cy - axes[1])),
            (int(cx + axes[0]), int(cy + axes[1])),
            1,
            thickness=-1,
        )
    return mask.astype(bool)


def _tight_box(mask: np.ndarray) -> Box:
    """Pixel ``x0, y0, x1, y1`` (end exclusive) of the mask's pixels."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def make_toy_boxes_sample(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, list[Box]]:
    """One image and the tight boxes of its shapes (the largest first).

    Returns:
        (image (H, W, 3) uint8 RGB, boxes as pixel ``(x0, y0, x1, y1)`` ints, end exclusive).
    """
    image = _texture(rng, height, width)
    shading = np.linspace(0.85, 1.15, width, dtype=np.float32)[None, :, None]
    boxes = []
    for scale in (0.45, 0.22)[: int(rng.integers(1, 3))]:
        mask = _shape(rng, height, width, scale * rng.uniform(0.8, 1.2))
        colour = np.zeros(3, np.float32)
        colour[int(rng.integers(3))] = rng.uniform(200, 250)
        colour[int(rng.integers(3))] += rng.uniform(0, 60)
        image[mask] = (colour * shading).repeat(height, 0)[mask]
        boxes.append(_tight_box(mask))
    image += rng.normal(0, 4, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), boxes


def _size(index: int, image_size: tuple[int, int]) -> tuple[int, int]:
    height, width = image_size
    return (width, height) if index % 3 == 2 else (height, width)


def voc_xml(image_id: str, size: tuple[int, int], boxes: list[Box], names: list[str]) -> str:
    """A VOC annotation file's text: 1-based inclusive ``xmin = x0 + 1``, ``xmax = x1``."""
    height, width = size
    objects = "".join(
        f"""
  <object>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{x0 + 1}</xmin>
      <ymin>{y0 + 1}</ymin>
      <xmax>{x1}</xmax>
      <ymax>{y1}</ymax>
    </bndbox>
  </object>"""
        for (x0, y0, x1, y1), name in zip(boxes, names, strict=True)
    )
    return f"""<annotation>
  <folder>VOC2007</folder>
  <filename>{image_id}.jpg</filename>
  <source><database>dinoreg-dense toy</database></source>
  <size>
    <width>{width}</width>
    <height>{height}</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>{objects}
</annotation>
"""


def make_toy_voc_boxes(
    root: str | Path,
    num_images: int = 12,
    image_size: tuple[int, int] = (96, 128),
    seed: int = 0,
    year: int = 2007,
) -> Path:
    """Write the toy dataset under ``root/VOCdevkit/VOC<year>`` in Pascal VOC's detection layout.

    Read it with ``VOCBoxesDataset(data_root=root, year=year)``. Image ids are ``000001`` ...;
    all are listed in ``ImageSets/Main/trainval.txt``. Sample i depends only on (seed, i).

    Args:
        root: output folder (created; existing toy files are overwritten).
        num_images: images to write.
        image_size: (H, W) of the landscape images; every third one is (W, H).
        seed: random seed.
        year: 2007 or 2012 (the folder name).

    Returns:
        The ``VOC<year>`` folder.
    """
    voc = Path(root).expanduser() / "VOCdevkit" / f"VOC{year}"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        size = _size(index, image_size)
        image, boxes = make_toy_boxes_sample(rng, *size)
        names = [TOY_OBJECT_NAMES[int(rng.integers(len(TOY_OBJECT_NAMES)))] for _ in boxes]
        image_id = f"{index + 1:06d}"
        Image.fromarray(image).save(voc / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY)
        (voc / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, size, boxes, names))
        ids.append(image_id)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def make_toy_coco20k(
    root: str | Path,
    num_images: int = 8,
    image_size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write a toy COCO train2014 in COCO's layout and a COCO20k-style list of all but one image.

    Files: ``train2014/COCO_train2014_<id:012d>.jpg``, ``annotations/instances_train2014.json``
    (``images``, ``annotations`` with ``bbox`` = float ``x, y, width, height``, ``categories``)
    and ``coco_20k_filenames.txt`` in LOST's format. Image ids are 9, 18, 27, ...; every image
    gets an extra crowd annotation (``iscrowd=1``) covering its top-left quarter, which the
    loader must drop; the last image is left out of the list. Read it with
    ``COCO20kDataset(data_root=root)``.

    Args:
        root: output folder (created; existing toy files are overwritten).
        num_images: images in the json (the list names ``num_images - 1``).
        image_size: (H, W) of the landscape images; every third one is (W, H).
        seed: random seed.

    Returns:
        ``root``.
    """
    root = Path(root).expanduser()
    (root / "train2014").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [
        dict(id=i + 1, name=name, supercategory="toy") for i, name in enumerate(TOY_OBJECT_NAMES)
    ]
    images, annotations = [], []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index])
        height, width = _size(index, image_size)
        image, boxes = make_toy_boxes_sample(rng, height, width)
        image_id = 9 * (index + 1)
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        Image.fromarray(image).save(root / "train2014" / file_name, quality=JPEG_QUALITY)
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
        crowd = (0, 0, width // 2, height // 2)
        for crowd_flag, (x0, y0, x1, y1) in [(0, box) for box in boxes] + [(1, crowd)]:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=int(rng.integers(1, len(categories) + 1)),
                    bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    area=float((x1 - x0) * (y1 - y0)),
                    iscrowd=crowd_flag,
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                )
            )
    instances = dict(images=images, annotations=annotations, categories=categories)
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(instances))
    listed = [f"train2014/{image['file_name']}\n" for image in images[:-1]]
    (root / "coco_20k_filenames.txt").write_text("".join(listed))
    return root
