"""Patch features shown as colours: their first three principal components as RGB."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._figure import render_panels

# A component whose range is below this fraction of the widest one carries no signal (e.g. the
# 2nd and 3rd components of features that take only two values); it is drawn as 0.
_FLAT_COMPONENT = 1e-4


def principal_projections(features: Tensor, num_components: int) -> Tensor:
    """Project centred rows onto their leading principal axes.

    The sign of each component is fixed so that its largest-magnitude projection is positive,
    which makes the result deterministic. Components beyond the rank of the data are zero.

    Args:
        features: (N, C) float rows.
        num_components: k.

    Returns:
        (N, k) projections, same dtype and device as ``features``.
    """
    centred = features - features.mean(dim=0, keepdim=True)
    _, _, right_vectors = torch.linalg.svd(centred, full_matrices=False)
    projections = centred @ right_vectors[:num_components].T
    missing = num_components - projections.shape[1]
    if missing > 0:
        projections = F.pad(projections, (0, missing))
    extreme = projections.gather(0, projections.abs().argmax(dim=0, keepdim=True))
    signs = torch.where(extreme < 0, -1.0, 1.0).to(projections.dtype)
    return projections * signs


def _min_max(values: Tensor) -> Tensor:
    """(N, k) -> (N, k) rescaled per column to [0, 1]; flat columns become 0."""
    low = values.amin(dim=0)
    span = values.amax(dim=0) - low
    flat = span <= _FLAT_COMPONENT * span.max()
    scaled = (values - low) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, torch.zeros_like(scaled), scaled)


def _border_mask(height: int, width: int, device: torch.device) -> Tensor:
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    return mask.flatten()


def pca_rgb(patch_map: Tensor, foreground_threshold: float | None = None) -> Tensor:
    """Colour each patch by the first three principal components of the map's features.

    Without a threshold the components of all patches become R, G, B, each min-max scaled to
    [0, 1]. With one, as in DINOv2's PCA figures, the first component is min-max scaled and
    oriented so that the patches on the map's border score lower than the inner ones (the
    background usually touches the border); patches above the threshold are foreground, a
    second PCA over the foreground alone gives their colours, and background patches are black.

    Args:
        patch_map: (C, h, w) features of one image.
        foreground_threshold: in [0, 1], or None to colour every patch.

    Returns:
        (h, w, 3) float32 colours in [0, 1], on the device of ``patch_map``.
    """
    if patch_map.ndim != 3:
        raise ValueError(f"patch_map must be (C, h, w), got shape {tuple(patch_map.shape)}")
    _, height, width = patch_map.shape
    features = patch_map.detach().flatten(1).T.float()
    if foreground_threshold is None:
        return _min_max(principal_projections(features, 3)).reshape(height, width, 3)

    first = principal_projections(features, 1)[:, 0]
    border = _border_mask(height, width, first.device)
    if (~border).any() and first[border].mean() > first[~border].mean():
        first = -first
    foreground = _min_max(first[:, None])[:, 0] > foreground_threshold
    colours = torch.zeros(height * width, 3, device=features.device)
    if foreground.any():
        colours[foreground] = _min_max(principal_projections(features[foreground], 3))
    return colours.reshape(height, width, 3)


def save_feature_pca(
    path: str | Path,
    image: np.ndarray | Tensor,
    patch_maps: Sequence[Tensor],
    titles: Sequence[str] | None = None,
    foreground_threshold: float | None = None,
) -> None:
    """Write one PNG: the image, then the PCA colours of each feature map at the image's size.

    Each map's :func:`pca_rgb` picture is upsampled (nearest) to (H, W). A map computed on an
    input padded to a multiple of the patch size covers slightly more than the image; the
    stretch this causes is under one patch.

    Args:
        path: PNG file to write; it is ``(1 + len(patch_maps)) * W`` pixels wide.
        image: (H, W, 3) uint8 RGB image.
        patch_maps: (C, h, w) feature maps of that image, e.g. one per backbone layer.
        titles: one title per map; defaults to ``features 0``, ``features 1`` ...
        foreground_threshold: passed to :func:`pca_rgb`.
    """
    image = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if titles is None:
        titles = [f"features {i}" for i in range(len(patch_maps))]
    if len(titles) != len(patch_maps):
        raise ValueError(f"got {len(titles)} titles for {len(patch_maps)} patch maps")
    panels = [image]
    for patch_map in patch_maps:
        colours = pca_rgb(patch_map, foreground_threshold).permute(2, 0, 1)[None]
        resized = F.interpolate(colours, size=image.shape[:2], mode="nearest")[0]
        panels.append((resized.permute(1, 2, 0) * 255).round().byte().cpu().numpy())
    render_panels(path, panels, ["image", *titles])
