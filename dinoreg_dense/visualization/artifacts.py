"""The numbers behind the registers paper's artifact figures: patch-token norms per layer, the
high-norm outlier tokens, and the cls / register attention over the image.

Darcet et al., "Vision Transformers Need Registers" (arXiv 2309.16588), Sec. 2.1: a large,
long-trained ViT without registers (DINOv2, OpenCLIP, DeiT-III) turns ~2 % of its patch tokens,
mostly in redundant background, into outliers whose output norm is about ten times the others';
the norm histogram becomes bimodal. The paper calls a DINOv2 token "high-norm" when its norm
exceeds 150 (:data:`PAPER_NORM_THRESHOLD`) and notes that the cut-off depends on the model. Since
it also depends on where the norm is read (before or after the final LayerNorm, see dinov2 issue
#373), :func:`robust_norm_threshold` gives a data-driven rule that needs no model-specific number.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..backbones import RegisterViT

PAPER_NORM_THRESHOLD = 150.0
"""Darcet et al. Sec. 2.1: DINOv2 patch tokens with an output norm above this are artifacts."""
MAD_TO_STD = 1.4826
"""Scales the median absolute deviation to the standard deviation of a normal distribution."""


def patch_token_norms(patch_maps: Sequence[Tensor]) -> Tensor:
    """L2 norm of every patch token at every layer.

    Args:
        patch_maps: L maps of shape (B, C, h, w), e.g. ``ViTFeatures.patch_maps`` (prefix tokens
            already dropped by the backbone).

    Returns:
        (L, B, h, w) float32 norms over the C channels, in feature units.
    """
    return torch.stack([torch.linalg.vector_norm(m.float(), dim=1) for m in patch_maps])


def robust_norm_threshold(norms: Tensor, mad_k: float = 5.0, min_ratio: float = 2.0) -> float:
    """Data-driven outlier threshold: ``max(median + mad_k * 1.4826 * MAD, min_ratio * median)``.

    The median and the median absolute deviation (MAD) ignore the ~2 % of artifact tokens, so
    the first term sits ``mad_k`` standard deviations above the bulk of ordinary tokens whatever
    the model's scale. The second term keeps near-constant maps (MAD ~ 0, e.g. numerical noise
    around one value) from calling tiny deviations outliers; the paper's artifacts are ~10x the
    median norm, far above both.

    Args:
        norms: any shape, the norms of one map (e.g. (h, w)).
        mad_k: standard deviations (estimated by the MAD) above the median.
        min_ratio: the threshold is at least this multiple of the median.

    Returns:
        The threshold, in the norms' units.
    """
    values = norms.flatten().float()
    median = values.median()
    mad = (values - median).abs().median()
    return max(float(median + mad_k * MAD_TO_STD * mad), float(min_ratio * median))


@dataclass
class Outliers:
    """High-norm tokens of one (h, w) norm map.

    Attributes:
        mask: (h, w) bool, True where the norm is above ``threshold``.
        threshold: the cut-off used, in norm units.
        positions: (row, col) patch-grid index of every outlier, row-major order.
    """

    mask: Tensor
    threshold: float
    positions: list[tuple[int, int]]

    @property
    def count(self) -> int:
        """Number of outlier tokens."""
        return len(self.positions)


def find_outliers(
    norm_map: Tensor, threshold: float | None = None, mad_k: float = 5.0, min_ratio: float = 2.0
) -> Outliers:
    """Tokens whose norm exceeds ``threshold``, or :func:`robust_norm_threshold` when it is None.

    Args:
        norm_map: (h, w) norms of one image at one layer.
        threshold: absolute cut-off (e.g. :data:`PAPER_NORM_THRESHOLD` for DINOv2), or None.
        mad_k, min_ratio: parameters of the robust rule.
    """
    if norm_map.ndim != 2:
        raise ValueError(f"norm_map must be (h, w), got shape {tuple(norm_map.shape)}")
    if threshold is None:
        threshold = robust_norm_threshold(norm_map, mad_k, min_ratio)
    mask = norm_map > threshold
    positions = [(int(r), int(c)) for r, c in mask.nonzero().tolist()]
    return Outliers(mask=mask, threshold=float(threshold), positions=positions)


def attention_entropy(attention: Tensor) -> Tensor:
    """Entropy of attention rows restricted to the patches and renormalised over them.

    A row spread evenly over N patches has entropy log N; one concentrated on a few artifact
    tokens has a low one.

    Args:
        attention: (..., h, w) non-negative attention over the patch grid.

    Returns:
        (...) entropies in nats.
    """
    p = attention.float().flatten(-2)
    p = p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return -(p * p.clamp_min(torch.finfo(p.dtype).tiny).log()).sum(-1)


def grid_to_image(maps: Tensor, patch_size: int, image_size: tuple[int, int]) -> Tensor:
    """Spread patch-grid values over their pixels (each patch a p x p block) and crop the
    padding the backbone added at the bottom and right.

    Args:
        maps: (..., h, w) values on the patch grid of an input padded to a multiple of p.
        patch_size: p.
        image_size: (H, W) of the unpadded input, with H <= h * p and W <= w * p.

    Returns:
        (..., H, W), pixel (y, x) holding the value of patch (y // p, x // p).
    """
    height, width = image_size
    if height > maps.shape[-2] * patch_size or width > maps.shape[-1] * patch_size:
        raise ValueError(
            f"image {image_size} is larger than the {tuple(maps.shape[-2:])} patch grid of "
            f"{patch_size}-pixel patches"
        )
    pixels = maps.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)
    return pixels[..., :height, :width]


@dataclass
class FeatureAnalysis:
    """Everything the artifact figures of one image show.

    Attributes:
        indices: absolute block index of each layer, all blocks in order.
        norms: (L, h, w) patch-token norms per layer (:func:`patch_token_norms`).
        layer_thresholds: the outlier threshold applied at each layer.
        outliers: the last layer's high-norm tokens (the paper's artifacts are read at the
            output).
        cls_attention: (heads, h, w) last block's cls row at the patch columns, or None
            without a cls token.
        cls_prefix_mass: (heads,) the rest of that row, on cls and registers (rows sum to 1).
        register_attention: (R, heads, h, w) each register's row at the patch columns (R may
            be 0).
        last_patch_map: (C, h, w) last layer's patch features (for the PCA picture).
        patch_size: p.
        image_size: (H, W) of the input before padding to a multiple of p.
    """

    indices: list[int]
    norms: Tensor
    layer_thresholds: list[float]
    outliers: Outliers
    cls_attention: Tensor | None
    cls_prefix_mass: Tensor | None
    register_attention: Tensor
    last_patch_map: Tensor
    patch_size: int
    image_size: tuple[int, int]


@torch.inference_mode()
def analyze_features(
    backbone: RegisterViT,
    image: Tensor,
    final_norm: bool = False,
    threshold: float | None = None,
    mad_k: float = 5.0,
    min_ratio: float = 2.0,
) -> FeatureAnalysis:
    """Run the backbone on one image and collect norms, outliers and attention.

    Args:
        backbone: any :class:`RegisterViT` (cls first or not, with or without registers).
        image: (1, 3, H, W) normalised image; the backbone pads it to a multiple of p.
        final_norm: read every layer after the final norm (DINOv2's ``x_norm_patchtokens`` at
            the last layer) instead of the raw residual stream.
        threshold, mad_k, min_ratio: the outlier rule (:func:`find_outliers`), per layer.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be (1, 3, H, W), got shape {tuple(image.shape)}")
    features = backbone.forward_intermediates(
        image,
        out_indices=list(range(backbone.num_layers)),
        norm=final_norm,
        return_attention=True,
    )
    norms = patch_token_norms(features.patch_maps)[:, 0]
    per_layer = [find_outliers(n, threshold, mad_k, min_ratio) for n in norms]
    attention = features.attention
    cls_attention = attention.cls_attention[0] if attention.cls_attention is not None else None
    return FeatureAnalysis(
        indices=features.indices,
        norms=norms,
        layer_thresholds=[o.threshold for o in per_layer],
        outliers=per_layer[-1],
        cls_attention=cls_attention,
        cls_prefix_mass=None if cls_attention is None else 1 - cls_attention.sum((-2, -1)),
        register_attention=attention.register_attention[0],
        last_patch_map=features.patch_maps[-1][0],
        patch_size=features.patch_size,
        image_size=(image.shape[-2], image.shape[-1]),
    )


def summarize(analysis: FeatureAnalysis) -> dict[str, Any]:
    """JSON-ready summary of one image.

    Keys: ``input_size`` [H, W]; ``patch_grid`` [h, w]; ``patch_size``; ``layers``: per block
    ``block``, ``norm_mean``, ``norm_median``, ``norm_max``, ``outlier_threshold``,
    ``outlier_count``; ``outliers``: the last layer's ``block``, ``threshold``, ``count`` and
    ``positions`` ([row, col] on the patch grid); ``cls_attention``: ``entropy`` (nats, per
    head, over the patches; log(h * w) is uniform) and ``prefix_mass`` (per head), or None
    without a cls token; ``register_attention``: ``entropy`` per register and head ([] without
    registers).
    """
    norms = analysis.norms.flatten(1)
    layers = [
        {
            "block": block,
            "norm_mean": float(n.mean()),
            "norm_median": float(n.median()),
            "norm_max": float(n.max()),
            "outlier_threshold": t,
            "outlier_count": int((n > t).sum()),
        }
        for block, n, t in zip(analysis.indices, norms, analysis.layer_thresholds, strict=True)
    ]
    cls = None
    if analysis.cls_attention is not None:
        cls = {
            "entropy": attention_entropy(analysis.cls_attention).tolist(),
            "prefix_mass": analysis.cls_prefix_mass.tolist(),
        }
    grid = list(analysis.norms.shape[-2:])
    return {
        "input_size": list(analysis.image_size),
        "patch_grid": grid,
        "patch_size": analysis.patch_size,
        "uniform_entropy": math.log(grid[0] * grid[1]),
        "layers": layers,
        "outliers": {
            "block": analysis.indices[-1],
            "threshold": analysis.outliers.threshold,
            "count": analysis.outliers.count,
            "positions": [list(p) for p in analysis.outliers.positions],
        },
        "cls_attention": cls,
        "register_attention": {
            "entropy": attention_entropy(analysis.register_attention).tolist(),
        },
    }
