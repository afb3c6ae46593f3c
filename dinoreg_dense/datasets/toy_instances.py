"""A small instance segmentation dataset in COCO 2017's exact layout and json format.

Each image shows up to four discs, squares and triangles (the three classes) in saturated colours
on a texture from scikit-image's bundled photos; later shapes may overlap earlier ones, whose
annotation then covers only their visible part. Objects are polygons, as in COCO; an object cut in
pieces by an overlap has one polygon per piece (traced with ``cv2.findContours``), one hidden
almost entirely is left out. Every second image also holds a crowd region: a cluster of small
discs annotated as one ``iscrowd=1`` object with an uncompressed RLE, as COCO stores crowds; every
fourth image holds that crowd and nothing else (Mask2Former's training skips such images).
``bbox`` and ``area`` are those of the annotation as pycocotools decodes it.
"""

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .toy_boxes import JPEG_QUALITY, _size, _texture

TOY_INSTANCE_CLASSES = ("disc", "square", "triangle")
TOY_CATEGORY_IDS = (1, 3, 5)
"""COCO category id of each class: not contiguous, like COCO's, so a label that is used as an id
shows up in tests."""
VERTICES = (24, 4, 3)
"""Polygon vertices of each class: discs are 24-gons, squares and triangles regular polygons."""
MIN_VISIBLE_PIXELS = 12


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE of an (H, W) mask: ``{"counts": [int, ...], "size": [H, W]}``.

    Counts are run lengths over the column-major pixel order, starting with a run of zeros
    (possibly of length 0), as in COCO's crowd annotations.
    """
    flat = np.asarray(mask, bool).ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _regular_polygon(rng: np.random.Generator, vertices: int, height: int, width: int) -> list:
    """Flat ``[x0, y0, x1, y1, ...]`` of a randomly placed and rotated regular polygon."""
    radius = rng.uniform(0.12, 0.28) * min(height, width)
    cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(vertices) / vertices
    points = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return np.round(points, 2).ravel().tolist()


def _decode(segmentation: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO segmentation (polygons or RLE), decoded by pycocotools."""
    from pycocotools import mask as mask_util

    rles = mask_util.frPyObjects(segmentation, height, width)
    rle = mask_util.merge(rles) if isinstance(rles, list) else rles
    return mask_util.decode(rle).astype(bool)


def _polygons_of(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (flat xy lists, at least 3 points each) tracing a mask's pieces."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def _crowd(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) bool cluster of 6-10 small discs in a random quarter of the image."""
    mask = np.zeros((height, width), np.uint8)
    top, left = int(rng.integers(2)) * height // 2, int(rng.integers(2)) * width // 2
    for _ in range(int(rng.integers(6, 11))):
        centre = (
            left + int(rng.integers(4, width // 2 - 4)),
            top + int(rng.integers(4, height // 2 - 4)),
        )
        cv2.circle(mask, centre, int(rng.integers(2, 5)), 1, thickness=-1)
    return mask.astype(bool)


def make_toy_instances_sample(
    rng: np.random.Generator, height: int, width: int, with_objects: bool, with_crowd: bool
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One image and its annotations (``segmentation``, ``category_id``, ``iscrowd`` only).

    Returns:
        (image (H, W, 3) uint8 RGB, annotations in painting order, the crowd first).
    """
    image = _texture(rng, height, width)
    shapes = []
    for _ in range(int(rng.integers(1, 5)) if with_objects else 0):
        label = int(rng.integers(len(TOY_INSTANCE_CLASSES)))
        polygon = _regular_polygon(rng, VERTICES[label], height, width)
        shapes.append((label, polygon, _decode([polygon], height, width)))
    crowd = _crowd(rng, height, width) if with_crowd else None
    layers = ([(0, None, crowd)] if crowd is not None else []) + shapes
    annotations = []
    for index, (label, polygon, full) in enumerate(layers):
        colour = np.zeros(3, np.float32)
        colour[int(rng.integers(3))] = rng.uniform(190, 250)
        colour[int(rng.integers(3))] += rng.uniform(0, 60)
        image[full] = colour
        visible = full & ~np.any([m for _, _, m in layers[index + 1 :]] or [False], axis=0)
        if visible.sum() < MIN_VISIBLE_PIXELS:
            continue
        if polygon is None:
            segmentation, iscrowd = uncompressed_rle(visible), 1
        else:
            segmentation = [polygon] if visible.sum() == full.sum() else _polygons_of(visible)
            iscrowd = 0
        annotations.append(
            dict(segmentation=segmentation, category_id=TOY_CATEGORY_IDS[label], iscrowd=iscrowd)
        )
    image += rng.normal(0, 4, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), annotations


def _complete(annotation: dict[str, Any], height: int, width: int) -> dict[str, Any] | None:
    """The annotation with ``area`` and ``bbox`` of its decoded mask; None if that is empty."""
    from pycocotools import mask as mask_util

    mask = _decode(annotation["segmentation"], height, width)
    if not mask.any():
        return None
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = float(mask_util.area(rle))
    bbox = [float(v) for v in mask_util.toBbox(rle)]
    return dict(annotation, area=area, bbox=bbox)


def make_toy_coco_instances(
    root: str | Path,
    num_train: int = 16,
    num_val: int = 8,
    image_size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write the toy dataset in COCO 2017's layout: ``{train,val}2017/<id:012d>.jpg`` and
    ``annotations/instances_{train,val}2017.json`` (``info``, ``licenses``, ``images``,
    ``annotations``, ``categories`` as in the official files).

    Read it with ``COCOInstanceDataset(data_root=root, split="train" or "val")``. Image ids run
    over both splits (train 1..num_train, then val); image i of a split depends only on
    (seed, split, i).

    Args:
        root: output folder (created; existing toy files are overwritten).
        num_train, num_val: images per split.
        image_size: (H, W) of the landscape images; every third one is (W, H).
        seed: random seed.

    Returns:
        ``root``.
    """
    root = Path(root).expanduser()
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [
        dict(supercategory="shape", id=category, name=name)
        for category, name in zip(TOY_CATEGORY_IDS, TOY_INSTANCE_CLASSES, strict=True)
    ]
    image_id = annotation_id = 0
    for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        (root / f"{split}2017").mkdir(exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            rng = np.random.default_rng([seed, split_index, index])
            height, width = _size(index, image_size)
            image, objects = make_toy_instances_sample(
                rng, height, width, with_objects=index % 4 != 3, with_crowd=index % 2 == 1
            )
            image_id += 1
            file_name = f"{image_id:012d}.jpg"
            Image.fromarray(image).save(root / f"{split}2017" / file_name, quality=JPEG_QUALITY)
            images.append(
                dict(
                    license=1,
                    file_name=file_name,
                    coco_url="",
                    height=height,
                    width=width,
                    date_captured="2026-01-01 00:00:00",
                    flickr_url="",
                    id=image_id,
                )
            )
            for annotation in objects:
                complete = _complete(annotation, height, width)
                if complete is None:
                    continue
                annotation_id += 1
                annotations.append(dict(complete, image_id=image_id, id=annotation_id))
        instances = dict(
            info=dict(
                description="dinoreg-dense toy instances",
                url="",
                version="1.0",
                year=2026,
                contributor="dinoreg-dense",
                date_created="2026/01/01",
            ),
            licenses=[dict(url="", id=1, name="synthetic")],
            images=images,
            annotations=annotations,
            categories=categories,
        )
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(instances))
    return root
