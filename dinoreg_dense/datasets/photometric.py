"""mmseg's ``PhotoMetricDistortion`` as an albumentations image-only transform."""

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
