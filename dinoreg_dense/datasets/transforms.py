"""Pipelines built from config dicts, and the geometric transforms of the DINOv2 recipe.

A pipeline is a list of dicts; each ``type`` is looked up first among the transforms registered in
``dinoreg_dense.registry.TRANSFORMS`` and then as an albumentations class name, so
``dict(type="RandomResize", ...)`` and ``dict(type="HorizontalFlip", p=0.5)`` sit side by side.
Masks (label maps, depth maps, instance masks) are always resized with nearest-neighbour
interpolation; boxes follow resizes and crops.
"""

import random
from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.crops.functional import crop_bboxes_by_coords

from dinoreg_dense.registry import TRANSFORMS
from dinoreg_dense.structures import IGNORE_INDEX

MASK_INTERPOLATION = cv2.INTER_NEAREST
IMAGE_INTERPOLATION = cv2.INTER_LINEAR
CROP_ATTEMPTS = 10


def build_transform(cfg: dict) -> A.BasicTransform | A.BaseCompose:
    """Build one transform from ``dict(type=name, **kwargs)``.

    ``name`` is resolved in our ``TRANSFORMS`` registry first, then in ``albumentations``.
    Albumentations compositions (``OneOf``, ``SomeOf``, ``Sequential``) take their ``transforms``
    as a list of dicts too.

    Args:
        cfg: the transform's constructor arguments plus ``type``.

    Returns:
        The transform, operating on ``image`` (H, W, 3) uint8 and ``mask`` (H, W) uint8 arrays.
    """
    kwargs = dict(cfg)
    name = kwargs.pop("type", None)
    if not isinstance(name, str):
        raise ValueError(f"a transform config needs type='ClassName', got {cfg!r}")
    if name in TRANSFORMS.module_dict:
        cls = TRANSFORMS.module_dict[name]
    else:
        cls = getattr(A, name, None)
        if not (isinstance(cls, type) and issubclass(cls, (A.BasicTransform, A.BaseCompose))):
            raise ValueError(
                f"unknown transform type '{name}': not registered in dinoreg_dense TRANSFORMS "
                f"({', '.join(sorted(TRANSFORMS.module_dict))}) and not an albumentations transform"
            )
        if issubclass(cls, A.BaseCompose):
            kwargs["transforms"] = [
                build_transform(child) for child in kwargs.get("transforms", ())
            ]
    try:
        transform = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot build transform '{name}' from {cfg!r}: {err}") from err
    # albumentations only warns about unknown arguments; a misspelt one must not pass silently.
    if getattr(transform, "invalid_args", None):
        raise ValueError(
            f"cannot build transform '{name}' from {cfg!r}: unknown arguments "
            f"{transform.invalid_args}"
        )
    return transform


def build_pipeline(
    cfgs: Sequence[dict],
    additional_targets: dict[str, str] | None = None,
    bbox_params: A.BboxParams | None = None,
) -> A.Compose:
    """Build an albumentations ``Compose`` from transform config dicts (see ``build_transform``).

    The compose records which transforms ran (``out["applied_transforms"]``), forces nearest
    interpolation for masks in every albumentations transform that resizes or warps, and draws all
    randomness from one shared generator (re-seed it with ``seed_pipeline``).

    Args:
        cfgs: transform configs, applied in order.
        additional_targets: extra input names and the albumentations target they behave as,
            e.g. ``{"depth": "mask"}`` (see ``A.Compose``).
        bbox_params: how ``bboxes=`` are given and filtered (see ``A.BboxParams``).

    Returns:
        A callable taking ``image=`` (H, W, 3) uint8 and optionally ``mask=`` (H, W) uint8 (and
        the other targets albumentations knows) and returning a dict with the transformed arrays.
    """
    pipeline = A.Compose(
        [build_transform(cfg) for cfg in cfgs],
        additional_targets=additional_targets,
        bbox_params=bbox_params,
        mask_interpolation=MASK_INTERPOLATION,
        save_applied_params=True,
    )
    seed_pipeline(pipeline, None)
    return pipeline


def seed_pipeline(pipeline: A.Compose, seed: int | None) -> None:
    """Give every transform of ``pipeline`` one shared random stream seeded with ``seed``.

    One stream, rather than albumentations' per-transform generators that all start from the same
    seed, keeps the decisions of different transforms independent.

    Args:
        pipeline: a pipeline from ``build_pipeline``.
        seed: any non-negative int, or None for fresh OS entropy.
    """
    pipeline.set_random_state(np.random.default_rng(seed), random.Random(seed))


def rescaled_size(
    height: int, width: int, scale: tuple[int, int], keep_ratio: bool
) -> tuple[int, int]:
    """Output size of mmseg's ``Resize``.

    With ``keep_ratio`` the image is scaled (up or down) by the largest factor that keeps its long
    edge <= ``max(scale)`` and its short edge <= ``min(scale)``; otherwise ``scale`` is the exact
    output (width, height).

    Args:
        height, width: input size in pixels.
        scale: (long, short) edge limits with ``keep_ratio``, else (width, height).
        keep_ratio: keep the aspect ratio.

    Returns:
        (height, width) of the output, each at least 1.
    """
    if not keep_ratio:
        return max(1, int(scale[1])), max(1, int(scale[0]))
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


@TRANSFORMS.register_module()
class ResizeToScale(A.DualTransform):
    """Deterministic resize to a scale, mmseg's ``Resize`` (see ``rescaled_size``).

    Images use bilinear interpolation, masks nearest. The DINOv2 test pipeline is
    ``ResizeToScale(scale=(2048, 512), keep_ratio=True)`` on the image only.

    Args:
        scale: (long, short) edge limits with ``keep_ratio``, else the exact (width, height).
        keep_ratio: keep the aspect ratio.
        p: probability of applying the transform.
    """

    def __init__(self, scale: tuple[int, int], keep_ratio: bool = True, p: float = 1.0) -> None:
        super().__init__(p=p)
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f"scale must be two positive sizes, got {scale}")
        self.scale = tuple(scale)
        self.keep_ratio = keep_ratio

    def target_scale(self) -> tuple[int, int]:
        """The scale for this call: ``scale`` here, a random multiple of it in ``RandomResize``."""
        return self.scale

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """``{"scale": this call's scale, "size": (h, w) output}`` for the input's ``shape``."""
        height, width = params["shape"][:2]
        scale = self.target_scale()
        return {"scale": scale, "size": rescaled_size(height, width, scale, self.keep_ratio)}

    def apply(self, img: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        """Resize an (H, W, C) image to (h, w, C) bilinearly."""
        return cv2.resize(img, (size[1], size[0]), interpolation=IMAGE_INTERPOLATION)

    def apply_to_mask(self, mask: np.ndarray, size: tuple[int, int], **params: Any) -> np.ndarray:
        """Resize an (H, W) label or depth map to (h, w) with nearest neighbour: no new values."""
        return cv2.resize(mask, (size[1], size[0]), interpolation=MASK_INTERPOLATION)

    def apply_to_bboxes(self, bboxes: np.ndarray, **params: Any) -> np.ndarray:
        """(N, 4+) boxes, unchanged: albumentations hands them over normalised to the image."""
        return bboxes


@TRANSFORMS.register_module()
class RandomResize(ResizeToScale):
    """mmseg's ``RandomResize``: ``ResizeToScale`` to ``scale`` times a ratio drawn uniformly.

    DINOv2's training recipe uses ``RandomResize(scale=(2048, 512), ratio_range=(0.5, 2.0))``: the
    image is rescaled so that its long edge <= 2048 r and its short edge <= 512 r.

    Args:
        scale: base (long, short) edge limits with ``keep_ratio``, else base (width, height).
        ratio_range: (min, max) of the uniform ratio r multiplying ``scale``.
        keep_ratio: keep the aspect ratio.
        p: probability of applying the transform.
    """

    def __init__(
        self,
        scale: tuple[int, int],
        ratio_range: tuple[float, float] = (0.5, 2.0),
        keep_ratio: bool = True,
        p: float = 1.0,
    ) -> None:
        super().__init__(scale=scale, keep_ratio=keep_ratio, p=p)
        if not 0 < ratio_range[0] <= ratio_range[1]:
            raise ValueError(f"ratio_range must be 0 < min <= max, got {ratio_range}")
        self.ratio_range = tuple(ratio_range)

    def target_scale(self) -> tuple[int, int]:
        """``scale`` times r ~ U(ratio_range), truncated to ints as in mmseg."""
        ratio = self.py_random.uniform(*self.ratio_range)
        return int(self.scale[0] * ratio), int(self.scale[1] * ratio)


@TRANSFORMS.register_module()
class RandomCropCatMax(A.DualTransform):
    """mmseg's ``RandomCrop`` with ``cat_max_ratio``: avoid crops dominated by one class.

    Up to 10 random crop windows are drawn; the first where more than one class is present and
    no class covers ``cat_max_ratio`` or more of the non-ignored pixels is kept, else the last one.
    Inputs smaller than the crop are cropped to their own size along that side (padding is the
    data preprocessor's job). Without a ``mask`` (test time, or a task without label maps) the
    first window is used.

    Args:
        height, width: crop size in pixels.
        cat_max_ratio: largest allowed share of one class; 1.0 disables the check.
        ignore_index: label excluded from the class shares.
        p: probability of applying the transform.
    """

    def __init__(
        self,
        height: int,
        width: int,
        cat_max_ratio: float = 0.75,
        ignore_index: int = IGNORE_INDEX,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        if height <= 0 or width <= 0:
            raise ValueError(f"crop size must be positive, got {height}x{width}")
        self.height = height
        self.width = width
        self.cat_max_ratio = cat_max_ratio
        self.ignore_index = ignore_index

    def get_params_dependent_on_data(
        self, params: dict[str, Any], data: dict[str, Any]
    ) -> dict[str, Any]:
        """Crop window ``{"crop_coords": (x0, y0, x1, y1)}`` for the (H, W) ``params["shape"]``."""
        height, width = params["shape"][:2]
        crop_h, crop_w = min(self.height, height), min(self.width, width)
        mask = data.get("mask")
        check = mask is not None and self.cat_max_ratio < 1.0
        for _ in range(CROP_ATTEMPTS):
            y0 = self.py_random.randint(0, height - crop_h)
            x0 = self.py_random.randint(0, width - crop_w)
            if not check or self._is_balanced(mask[y0 : y0 + crop_h, x0 : x0 + crop_w]):
                break
        return {"crop_coords": (x0, y0, x0 + crop_w, y0 + crop_h)}

    def _is_balanced(self, labels: np.ndarray) -> bool:
        counts = np.bincount(labels.ravel(), minlength=self.ignore_index + 1)
        counts[self.ignore_index] = 0
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def apply(
        self, img: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any
    ) -> np.ndarray:
        """Crop an (H, W, ...) array to (y1 - y0, x1 - x0, ...)."""
        x0, y0, x1, y1 = crop_coords
        return img[y0:y1, x0:x1]

    def apply_to_bboxes(
        self, bboxes: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any
    ) -> np.ndarray:
        """(N, 4+) normalised boxes moved into the crop window (the Compose drops empty ones)."""
        return crop_bboxes_by_coords(bboxes, crop_coords, params["shape"][:2])
