"""Image-only colour augmentations: mmseg's ``PhotoMetricDistortion`` and the depth recipes'
gamma / brightness / per-channel colour change (BTS, Monocular-Depth-Estimation-Toolbox)."""

from typing import Any

import albumentations as A
import cv2
import numpy as np

from dinoreg_dense.registry import TRANSFORMS

HUE_PERIOD = 180  # OpenCV stores 8-bit hue as degrees / 2


def _affine(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``values * alpha + beta`` clipped to [0, 255] and truncated to uint8, as mmseg does."""
    return np.clip(values.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


@TRANSFORMS.register_module()
class PhotoMetricDistortion(A.ImageOnlyTransform):
    """Random brightness, contrast, saturation and hue changes, each applied with probability 1/2.

    Order (as in mmseg): brightness, contrast (first or last, at random), saturation, hue.
    Brightness adds ``U(-brightness_delta, brightness_delta)``; contrast multiplies by
    ``U(*contrast_range)``; saturation multiplies the HSV saturation by ``U(*saturation_range)``;
    hue shifts the HSV hue by an integer in [-hue_delta, hue_delta] (OpenCV units, 180 = 360°).

    Args:
        brightness_delta: largest brightness offset, in 0-255 units.
        contrast_range: (min, max) contrast factor.
        saturation_range: (min, max) saturation factor.
        hue_delta: largest hue shift in OpenCV hue units (degrees / 2).
        p: probability of considering any distortion at all.
    """

    def __init__(
        self,
        brightness_delta: int = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: int = 18,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta

    def get_params(self) -> dict[str, Any]:
        """Draw which distortions apply and their strengths (None = skipped)."""
        rng = self.py_random

        def maybe(draw: Any) -> Any:
            return draw() if rng.random() < 0.5 else None

        return {
            "brightness": maybe(lambda: rng.uniform(-self.brightness_delta, self.brightness_delta)),
            "contrast_first": rng.random() < 0.5,
            "contrast": maybe(lambda: rng.uniform(*self.contrast_range)),
            "saturation": maybe(lambda: rng.uniform(*self.saturation_range)),
            "hue": maybe(lambda: rng.randint(-self.hue_delta, self.hue_delta)),
        }

    def apply(
        self,
        img: np.ndarray,
        brightness: float | None,
        contrast_first: bool,
        contrast: float | None,
        saturation: float | None,
        hue: int | None,
        **params: Any,
    ) -> np.ndarray:
        """Distort an (H, W, 3) uint8 RGB image; returns the same shape and dtype."""
        if brightness is not None:
            img = _affine(img, beta=brightness)
        if contrast is not None and contrast_first:
            img = _affine(img, alpha=contrast)
        if saturation is not None or hue is not None:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            if saturation is not None:
                hsv[..., 1] = _affine(hsv[..., 1], alpha=saturation)
            if hue is not None:
                hsv[..., 0] = (hsv[..., 0].astype(np.int16) + hue) % HUE_PERIOD
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if contrast is not None and not contrast_first:
            img = _affine(img, alpha=contrast)
        return img


@TRANSFORMS.register_module()
class GammaBrightnessColorAug(A.ImageOnlyTransform):
    """The depth recipes' colour augmentation: gamma, then brightness, then per-channel gain.

    ``out = clip(s * (img / s) ** gamma * brightness * colour[c], 0, 255)`` with
    ``gamma ~ U(gamma_range)``, ``brightness ~ U(brightness_range)`` and one
    ``colour[c] ~ U(color_range)`` per RGB channel, applied with probability ``p``. It touches the
    image only: depth and other targets pass through unchanged.

    The NYU recipe of DINOv2 and the toolbox is ``gamma_range=(0.9, 1.1)``,
    ``brightness_range=(0.75, 1.25)``, ``color_range=(0.9, 1.1)``, ``p=0.5``; KITTI's uses
    ``brightness_range=(0.9, 1.1)``. BTS applies the gamma to intensities in [0, 1]
    (``intensity_scale=255``, the default). The toolbox's ``ColorAug`` (and so DINOv2's copied
    config) applies it to raw 0-255 values (``intensity_scale=1``), where a gamma of 1.1 maps
    128 to 208 and saturates everything above 154: a much stronger brightness change.

    Args:
        gamma_range: (min, max) gamma.
        brightness_range: (min, max) factor for all channels.
        color_range: (min, max) factor drawn per channel.
        intensity_scale: the intensity that the gamma leaves unchanged, in 0-255 units.
        p: probability of applying the transform.

    Source: BTS ``augment_image`` (Lee et al. 2019); toolbox ``depth/datasets/pipelines``.
    """

    def __init__(
        self,
        gamma_range: tuple[float, float] = (0.9, 1.1),
        brightness_range: tuple[float, float] = (0.9, 1.1),
        color_range: tuple[float, float] = (0.9, 1.1),
        intensity_scale: float = 255.0,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        for name, (low, high) in (
            ("gamma_range", gamma_range),
            ("brightness_range", brightness_range),
            ("color_range", color_range),
        ):
            if not 0 < low <= high:
                raise ValueError(f"{name} must be 0 < min <= max, got {(low, high)}")
        if intensity_scale <= 0:
            raise ValueError(f"intensity_scale must be positive, got {intensity_scale}")
        self.gamma_range = tuple(gamma_range)
        self.brightness_range = tuple(brightness_range)
        self.color_range = tuple(color_range)
        self.intensity_scale = float(intensity_scale)

    def get_params(self) -> dict[str, Any]:
        """Draw ``gamma``, ``brightness`` and the (3,) per-channel ``colour`` gains."""
        rng = self.py_random
        return {
            "gamma": rng.uniform(*self.gamma_range),
            "brightness": rng.uniform(*self.brightness_range),
            "colour": np.array([rng.uniform(*self.color_range) for _ in range(3)], np.float32),
        }

    def apply(
        self, img: np.ndarray, gamma: float, brightness: float, colour: np.ndarray, **params: Any
    ) -> np.ndarray:
        """Change an (H, W, 3) uint8 RGB image; returns the same shape and dtype (rounded)."""
        scale = self.intensity_scale
        out = scale * (img.astype(np.float32) / scale) ** gamma * (brightness * colour)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
