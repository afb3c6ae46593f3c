"""Small synthetic depth datasets written in the exact NYU Depth v2 and KITTI Eigen layouts (see
``nyu.py`` and ``kitti.py``).

Each scene is ray-cast through a pinhole camera with NYU's focal length (scaled to the image
width): a floor that tilts a little, a back wall 4-9.5 m away and a sphere 1.5-4 m away in front.
Surfaces are textured with photos from scikit-image (astronaut, chelsea, coffee) and darkened
with distance, so depth can be learnt from the image. Depth is the z coordinate in metres, as in
NYU, stored as 16-bit PNG millimetres; a few pixels are 0 (no measurement), like the Kinect's
holes: a shadow band beside the sphere's silhouette and small random blobs. The KITTI variant scales
the same scenes to 7.5-75 m and keeps depth only where a lidar would see it (``lidar_mask``):
every third row below the top 30 % of the image, with random drop-outs, about 14 % of the pixels,
stored as 16-bit PNG metres x 256.
"""

from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data as skimage_data

from .kitti import KITTI_DEPTH_DIR, KITTI_IMAGE_DIR, KITTI_SPLITS
from .nyu import NYU_SPLITS

NYU_FOCAL = 518.8579
"""Pixels, for NYU's 640-pixel-wide images."""
NYU_WIDTH = 640
SPLIT_FOLDERS = {"train": "toy_train_{group:04d}", "test": "toy_test"}
FRAMES_PER_SCENE = 8
TEXELS_PER_METRE = 60.0
JPEG_QUALITY = 95
SHADOW_WIDTH = 2
DISCONTINUITY = 0.3
"""Metres between neighbouring pixels that make a silhouette edge."""
KITTI_FOCAL = 721.5377
"""Pixels, for KITTI's 1242-pixel-wide frames (2011_09_26 calibration, as in BTS's lists)."""
KITTI_WIDTH = 1242
KITTI_SCENE_SCALE = 7.5
"""The toy scenes (1-10 m) scaled to a street's 7.5-75 m, inside KITTI's 80 m cap."""
LIDAR_SKY_SHARE = 0.3
LIDAR_ROW_STEP = 3
LIDAR_DROPOUT = 0.4
KITTI_DATE = "2011_09_26"
KITTI_DRIVES = {"train": 1, "test": 1001}
"""First toy drive number per split: the splits never share a drive, as in the Eigen split."""


@cache
def _photos() -> tuple[np.ndarray, ...]:
    """The texture photos as (H, W, 3) float32 RGB in [0, 255]."""
    return tuple(
        photo().astype(np.float32)
        for photo in (skimage_data.astronaut, skimage_data.chelsea, skimage_data.coffee)
    )


def _texture(
    rng: np.random.Generator, photo: np.ndarray, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """(H, W, 3) float32: ``photo`` sampled at texel coordinates (u, v), mirrored past its edges.

    A random offset and scale make each surface show a different crop of the photo.
    """
    scale = rng.uniform(0.7, 1.4)
    offset_u, offset_v = rng.uniform(0, photo.shape[1]), rng.uniform(0, photo.shape[0])
    map_x = (u * scale + offset_u).astype(np.float32)
    map_y = (v * scale + offset_v).astype(np.float32)
    return cv2.remap(photo, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _kinect_holes(rng: np.random.Generator, depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels without a measurement.

    A band of ``SHADOW_WIDTH`` pixels on the far side of every silhouette edge (left of a near
    surface: the Kinect's projector sits beside its camera) and 1-3 small elliptic blobs.
    """
    height, width = depth.shape
    holes = np.zeros((height, width), bool)
    step = np.diff(depth, axis=1)  # > 0: the right neighbour is farther
    for shift in range(SHADOW_WIDTH):
        near_on_right = np.zeros((height, width), bool)
        near_on_right[:, : width - 1 - shift] = step[:, shift:] < -DISCONTINUITY
        holes |= near_on_right
    blobs = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (
            int(rng.integers(1, max(2, width // 20))),
            int(rng.integers(1, max(2, height // 20))),
        )
        cv2.ellipse(blobs, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    return holes | blobs.astype(bool)


def make_toy_depth_sample(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic image and its depth map.

    Args:
        rng: the random stream of this sample.
        height, width: image size.

    Returns:
        (image (H, W, 3) uint8 RGB, depth (H, W) float32 metres in [1, 10], 0 = no measurement).
    """
    focal = NYU_FOCAL * width / NYU_WIDTH
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    ray_x, ray_y = (u - (width - 1) / 2) / focal, (v - (height - 1) / 2) / focal  # ray_z = 1

    wall_depth = rng.uniform(4.0, 9.5)
    depth = np.full((height, width), wall_depth)
    surface = np.zeros((height, width), np.int64)  # 0 wall, 1 floor, 2 sphere

    # Floor: y = camera_height - tan(tilt) * z (y points down), hit where the ray descends to it.
    camera_height, tilt = rng.uniform(1.0, 1.6), np.tan(rng.uniform(-0.08, 0.08))
    denominator = ray_y + tilt
    floor_depth = np.where(
        denominator > 1e-6, camera_height / np.maximum(denominator, 1e-6), np.inf
    )
    on_floor = floor_depth < depth
    depth[on_floor], surface[on_floor] = floor_depth[on_floor], 1

    # Sphere: nearest root of |z * ray - centre|^2 = radius^2.
    radius = rng.uniform(0.3, 0.7)
    centre_z = rng.uniform(1.5 + radius, 4.0)
    centre = np.array(
        [rng.uniform(-0.4, 0.4) * centre_z, rng.uniform(-0.2, 0.3) * centre_z, centre_z]
    )
    ray_dot_centre = ray_x * centre[0] + ray_y * centre[1] + centre[2]
    ray_norm2 = ray_x**2 + ray_y**2 + 1
    discriminant = ray_dot_centre**2 - ray_norm2 * (centre @ centre - radius**2)
    sphere_depth = np.where(
        discriminant > 0,
        (ray_dot_centre - np.sqrt(np.maximum(discriminant, 0))) / ray_norm2,
        np.inf,
    )
    on_sphere = sphere_depth < depth
    depth[on_sphere], surface[on_sphere] = sphere_depth[on_sphere], 2
    depth = np.clip(depth, 1.0, 10.0)

    # Texel coordinates per surface: metres on the plane; longitude and latitude on the sphere.
    x, y = ray_x * depth, ray_y * depth
    normal = np.stack([x - centre[0], y - centre[1], depth - centre[2]]) / radius
    coordinates = {
        0: (x, y),
        1: (x, depth),
        2: (np.arctan2(normal[0], -normal[2]) * 2, np.arcsin(np.clip(normal[1], -1, 1)) * 2),
    }
    image = np.zeros((height, width, 3), np.float32)
    for index, photo_index in enumerate(rng.permutation(3)):
        tex_u, tex_v = (c * TEXELS_PER_METRE for c in coordinates[index])
        texture = _texture(rng, _photos()[photo_index], tex_u, tex_v)
        image[surface == index] = texture[surface == index]
    shade = 1.0 / (1.0 + 0.12 * (depth - 1.0))
    image = image * shade[..., None].astype(np.float32)
    image += rng.normal(0, 3.0, size=image.shape).astype(np.float32)

    depth = depth.astype(np.float32)
    depth[_kinect_holes(rng, depth)] = 0.0
    return np.clip(image, 0, 255).astype(np.uint8), depth


def toy_depth_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of sample ``index`` of ``split``: one per sample, independent of counts."""
    return np.random.default_rng([seed, list(NYU_SPLITS).index(split), index])


def make_toy_nyu(
    root: str | Path,
    num_train: int = 64,
    num_val: int = 16,
    image_size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write the toy depth dataset under ``root`` in the NYU layout (``nyu_train.txt`` ...).

    Read it with ``NYUDepthDataset(data_root=root, split="train")`` (or ``"test"``, made of the
    ``num_val`` validation scenes). Sample i of a split is ``make_toy_depth_sample`` with
    ``toy_depth_rng(seed, split, i)``, so the output is identical for a seed and the test scenes
    do not depend on ``num_train``.

    Args:
        root: output folder (created if needed; existing toy files are overwritten).
        num_train: images listed in ``nyu_train.txt``, in folders of ``FRAMES_PER_SCENE``.
        num_val: images listed in ``nyu_test.txt``.
        image_size: (H, W) of every image.
        seed: random seed.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    height, width = image_size
    focal = NYU_FOCAL * width / NYU_WIDTH
    for split, count in (("train", num_train), ("test", num_val)):
        lines = []
        for index in range(count):
            folder = SPLIT_FOLDERS[split].format(group=index // FRAMES_PER_SCENE)
            (root / folder).mkdir(parents=True, exist_ok=True)
            image, depth = make_toy_depth_sample(toy_depth_rng(seed, split, index), height, width)
            rgb, sync_depth = (
                f"{folder}/rgb_{index:05d}.jpg",
                f"{folder}/sync_depth_{index:05d}.png",
            )
            Image.fromarray(image).save(root / rgb, quality=JPEG_QUALITY)
            millimetres = np.round(depth.astype(np.float64) * 1000).astype(np.uint16)
            Image.fromarray(millimetres).save(root / sync_depth)
            lines.append(f"{rgb} {sync_depth} {focal:.4f}\n")
        (root / NYU_SPLITS[split]).write_text("".join(lines))
    return root


def lidar_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) bool: where a toy lidar measures depth; most pixels are False.

    No return from the top ``LIDAR_SKY_SHARE`` of the rows (sky), one scan line every
    ``LIDAR_ROW_STEP`` rows below, and ``LIDAR_DROPOUT`` of those points lost at random.
    """
    mask = np.zeros((height, width), bool)
    first = int(np.ceil(LIDAR_SKY_SHARE * height))
    mask[first::LIDAR_ROW_STEP] = True
    return mask & (rng.random((height, width)) >= LIDAR_DROPOUT)


def make_toy_kitti(
    root: str | Path,
    num_train: int = 64,
    num_val: int = 16,
    image_size: tuple[int, int] = (120, 400),
    seed: int = 0,
) -> Path:
    """Write a toy depth dataset under ``root`` in the KITTI Eigen layout of BTS / the toolbox.

    ``kitti_eigen_{train,test}.txt``, RGB PNGs under ``input/<date>/<drive>/image_02/data/`` and
    sparse depth under ``gt_depth/<drive>/proj_depth/groundtruth/image_02/``. Like the real Eigen
    test list, the test list ends with one image whose depth is ``None`` (written, but without
    ground truth). Read it with ``KITTIDepthDataset(data_root=root, split="train",
    kb_crop_size=None)`` (or a crop no larger than ``image_size``; the real 352x1216 crop needs
    frames of at least that size). Sample i of a split uses ``toy_depth_rng(seed, split, i)``.

    Args:
        root: output folder (created if needed; existing toy files are overwritten).
        num_train: images listed with depth in ``kitti_eigen_train.txt``, ``FRAMES_PER_SCENE``
            per drive.
        num_val: images listed with depth in ``kitti_eigen_test.txt`` (plus one without).
        image_size: (H, W) of every image.
        seed: random seed.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root).expanduser()
    height, width = image_size
    focal = KITTI_FOCAL * width / KITTI_WIDTH
    for split, count in (("train", num_train), ("test", num_val)):
        lines = []
        for index in range(count + (split == "test" and count > 0)):
            drive = f"{KITTI_DATE}_drive_{KITTI_DRIVES[split] + index // FRAMES_PER_SCENE:04d}_sync"
            frame = f"{index:010d}.png"
            rgb = f"{KITTI_DATE}/{drive}/image_02/data/{frame}"
            rng = toy_depth_rng(seed, split, index)
            image, depth = make_toy_depth_sample(rng, height, width)
            (root / KITTI_IMAGE_DIR / rgb).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / KITTI_IMAGE_DIR / rgb)
            if index == count:  # the extra test image: no ground truth, as in the Eigen list
                lines.append(f"{rgb} None {focal:.4f}\n")
                continue
            depth = np.where(lidar_mask(rng, height, width), depth * KITTI_SCENE_SCALE, 0.0)
            gt = f"{drive}/proj_depth/groundtruth/image_02/{frame}"
            (root / KITTI_DEPTH_DIR / gt).parent.mkdir(parents=True, exist_ok=True)
            scaled = np.round(depth.astype(np.float64) * 256).astype(np.uint16)
            Image.fromarray(scaled).save(root / KITTI_DEPTH_DIR / gt)
            lines.append(f"{rgb} {gt} {focal:.4f}\n")
        (root / KITTI_SPLITS[split]).write_text("".join(lines))
    return root
