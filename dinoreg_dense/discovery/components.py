"""The discovery result, and the step LOST and TokenCut share: the connected component of the
seed patch in a foreground map, and its box in pixels."""

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch
from torch import Tensor


@dataclass
class Discovery:
    """One discovered object; every tensor is on the CPU, whatever device the features were on.

    Attributes:
        box: (4,) float32 ``x0, y0, x1, y1`` in pixels of the unpadded image, ends exclusive (see
            :func:`~dinoreg_dense.discovery.box_iou`), clipped to the image.
        mask: (h, w) bool patch mask of the object: the 4-connected component holding the seed.
        seed: (row, col) of the seed patch: LOST's lowest-degree patch, TokenCut's largest
            absolute eigenvector entry.
        scores: (h, w) float32 map for pictures: LOST's summed similarity to the seed's
            neighbours, TokenCut's second eigenvector (signed so the object is the high side).
    """

    box: Tensor
    mask: Tensor
    seed: tuple[int, int]
    scores: Tensor


def check_grid(features: Tensor, patch_size: int, image_size: tuple[int, int]) -> None:
    """Raise ``ValueError`` unless ``features`` is an (h, w, C) map of an ``image_size`` image
    padded up to a multiple of ``patch_size`` (h = ceil(H / p), w = ceil(W / p))."""
    if features.ndim != 3:
        raise ValueError(f"features must be one image's (h, w, C) map, got {tuple(features.shape)}")
    h, w = features.shape[:2]
    height, width = image_size
    expected = (math.ceil(height / patch_size), math.ceil(width / patch_size))
    if (h, w) != expected:
        raise ValueError(
            f"a {h}x{w} patch grid does not come from a {height}x{width} image with patch size "
            f"{patch_size} (expected a {expected[0]}x{expected[1]} grid); pass the size of the "
            "image the backbone saw before its padding to a multiple of the patch size"
        )


def seed_component(
    foreground: Tensor,
    seed: tuple[int, int],
    scores: Tensor,
    patch_size: int,
    image_size: tuple[int, int],
) -> Discovery:
    """The 4-connected component of ``foreground`` holding ``seed``, and its box.

    Args:
        foreground: (h, w) bool patch map.
        seed: (row, col) patch that must lie in ``foreground``.
        scores: (h, w) map stored in the result.
        patch_size: pixels per patch side.
        image_size: (H, W) pixels of the unpadded image; the box is clipped to it.

    Returns:
        :class:`Discovery`; the box spans the component's patches, ``patch_size`` pixels each.

    Raises:
        ValueError: the seed is background.
    """
    # scipy's default structuring element in 2D is the cross: 4-connectivity, as in LOST.
    labels, _ = scipy.ndimage.label(foreground.cpu().numpy())
    label = labels[seed]
    if label == 0:
        raise ValueError(f"the seed patch {seed} is not in the foreground map")
    mask = torch.from_numpy(np.asarray(labels == label))
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    height, width = image_size
    box = torch.tensor(
        [
            cols[0] * patch_size,
            rows[0] * patch_size,
            min((int(cols[-1]) + 1) * patch_size, width),
            min((int(rows[-1]) + 1) * patch_size, height),
        ],
        dtype=torch.float32,
    )
    return Discovery(box=box, mask=mask, seed=seed, scores=scores.float().cpu())
