"""DINOv2's linear depth classifier as pure tensor functions, and an equal, cheaper order.

The probe (``LinearDepthHead``) upsamples every patch map, joins the cls token to every pixel,
applies BatchNorm and a 1x1 convolution to depth-bin logits at the upsampled size: with ViT-S at
416x544 that is a (B, 768, 120, 156) tensor through BatchNorm and a 768 -> 256 convolution, more
work than the frozen backbone's forward. Bilinear upsampling is a per-channel weighted average
whose weights sum to one, so it commutes with any per-pixel affine map; BatchNorm (given its
statistics) and the 1x1 convolution are such maps. :func:`classify_then_upsample` therefore
applies the classifier on the patch grid, upsamples the bin logits and adds the cls token's part
as a per-image bias, with BatchNorm's statistics (and its running averages) those of the
upsampled maps: the same logits in exact arithmetic at 1/(2 upsample^2) of the convolution's
cost, and no 768-channel map at the upsampled size.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def upsample_maps(maps: Tensor, factor: int) -> Tensor:
    """(B, C, h, w) -> (B, C, factor * h, factor * w), bilinear as the probe does (DINOv2)."""
    if factor == 1:
        return maps
    return F.interpolate(maps, scale_factor=factor, mode="bilinear")


def classify_upsampled(
    patch_maps: list[Tensor],
    cls_tokens: list[Tensor] | None,
    bn: nn.Module,
    conv: nn.Conv2d,
    upsample: int,
) -> Tensor:
    """DINOv2's order: logits (B, K, u h, u w) = conv(bn(concat_i [up(map_i), cls_i])).

    Args:
        patch_maps: (B, D_i, h, w) per selected layer.
        cls_tokens: (B, D_i) per selected layer, joined after its map; ``None`` for none.
        bn: ``nn.BatchNorm2d`` over the joined channels, or ``nn.Identity``.
        conv: 1x1 convolution to K bins.
        upsample: factor u.
    """
    maps = []
    for i, patch_map in enumerate(patch_maps):
        x = upsample_maps(patch_map, upsample)
        if cls_tokens is not None:
            x = torch.cat([x, cls_tokens[i][:, :, None, None].expand_as(x)], dim=1)
        maps.append(x)
    return conv(bn(torch.cat(maps, dim=1)))


def classify_then_upsample(
    patch_maps: list[Tensor],
    cls_tokens: list[Tensor] | None,
    bn: nn.Module,
    conv: nn.Conv2d,
    upsample: int,
) -> Tensor:
    """The logits of :func:`classify_upsampled` (B, K, u h, u w), classified on the patch grid.

    Same arguments and result (up to float rounding), gradients included, also for maps that
    require gradients (a fine-tuned backbone). In training mode BatchNorm normalises with the
    mean and biased variance of the *upsampled* maps (the cls channels: over the batch, as they
    are constant over the pixels) and updates its running averages as ``bn`` would.
    """
    height, width = (upsample * n for n in patch_maps[0].shape[-2:])
    count = patch_maps[0].shape[0] * height * width  # values per channel that BatchNorm sees
    parts = []  # (input, kind) in the probe's channel order: map 0, cls 0, map 1, cls 1 ...
    for i, patch_map in enumerate(patch_maps):
        parts.append((patch_map, "patch"))
        if cls_tokens is not None:
            parts.append((cls_tokens[i], "cls"))
    weight = conv.weight.flatten(1)  # (K, C)
    bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if isinstance(bn, nn.BatchNorm2d):
        scale, shift = _batch_norm_affine(bn, parts, upsample, count)
        bias = bias + weight @ shift
        weight = weight * scale
    patch_columns, cls_columns, offset = [], [], 0
    for x, kind in parts:
        (patch_columns if kind == "patch" else cls_columns).append(
            weight[:, offset : offset + x.shape[1]]
        )
        offset += x.shape[1]
    patches = torch.cat(patch_maps, dim=1)
    per_image = bias.expand(patches.shape[0], -1)
    if cls_columns:
        per_image = per_image + torch.cat(cls_tokens, dim=1) @ torch.cat(cls_columns, dim=1).T
    # a per-image constant passes through the upsampling unchanged: add it on the grid
    weight = torch.cat(patch_columns, dim=1)[:, :, None, None]
    return upsample_maps(F.conv2d(patches, weight) + per_image[:, :, None, None], upsample)


def upsampled_moments(maps: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Per-channel (biased variance, mean), each (C,), of ``upsample_maps(maps, factor)`` over
    batch and pixels, without upsampling (B, C, h, w) maps.

    Bilinear upsampling is ``U_h X U_w^T`` per map X with interpolation matrices U (read off
    :func:`upsample_maps` itself). The mean is ``1^T U_h X U_w^T 1 / (H W)``; after subtracting
    it (upsampling keeps constants), the mean square is ``sum((G_h X) * (X G_w)) / (H W)`` with
    ``G = U^T U``: two small matrix products on the patch grid. Differentiable in ``maps``.
    """
    batch, _, rows, cols = maps.shape
    eye = torch.eye(max(rows, cols), dtype=maps.dtype, device=maps.device)
    u_rows = upsample_maps(eye[:rows, None, :rows, None], factor)[:, 0, :, 0]  # (h, H) = U_h^T
    u_cols = upsample_maps(eye[:cols, None, :cols, None], factor)[:, 0, :, 0]  # (w, W) = U_w^T
    count = batch * u_rows.shape[1] * u_cols.shape[1]
    mean = torch.einsum("bchw,h,w->c", maps, u_rows.sum(1), u_cols.sum(1)) / count
    centred = maps - mean[:, None, None]
    gram_rows, gram_cols = u_rows @ u_rows.T, u_cols @ u_cols.T
    square = torch.einsum("ih,bchw,bciv,vw->c", gram_rows, centred, centred, gram_cols) / count
    return square, mean


def _batch_norm_affine(
    bn: nn.BatchNorm2d, parts: list[tuple[Tensor, str]], upsample: int, count: int
) -> tuple[Tensor, Tensor]:
    """(scale, shift) of shape (C,) with ``bn(x) = x * scale + shift`` for the joined, upsampled
    input, and ``bn``'s running averages updated as its forward would (training mode)."""
    if bn.training or bn.running_mean is None:
        means, variances = [], []
        for x, kind in parts:
            if kind == "patch":
                var, mean = upsampled_moments(x, upsample)
            else:
                var, mean = torch.var_mean(x, dim=0, correction=0)
            means.append(mean)
            variances.append(var)
        mean, var = torch.cat(means), torch.cat(variances)
        if bn.training and bn.track_running_stats and bn.running_mean is not None:
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum
            if factor is None:  # cumulative moving average
                factor = 1.0 / bn.num_batches_tracked.item()
            with torch.no_grad():
                bn.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (count / max(count - 1, 1))
                bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = torch.rsqrt(var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
        return scale, bn.bias - mean * scale
    return scale, -mean * scale


def classify_then_upsample_is_faster(device_type: str) -> bool:
    """Whether ``LinearDepthHead`` takes :func:`classify_then_upsample` by default.

    On CPU it is: ViT-S's frozen lin.1 training step at 416x544 takes 1.1x the backbone's
    forward instead of 2.1x (``benchmarks/depth_step.py``, 1 thread, by min). On CUDA it has not
    been measured, so DINOv2's order stays the default there (``benchmarks/depth_step.py
    --device cuda`` times both).
    """
    return device_type == "cpu"


def expected_depth(logits: Tensor, bins: Tensor, norm_eps: float) -> Tensor:
    """Bin logits (B, K, H, W) -> depth (B, 1, H, W): the bins' centres (K,) weighted by the
    scores ``relu(logits) + norm_eps`` normalised to sum to one over the bins (DINOv2's
    "linear" normalisation), computed as a ratio of two sums so the normalised scores are never
    materialised."""
    scores = F.relu(logits) + norm_eps
    return (torch.einsum("bkhw,k->bhw", scores, bins) / scores.sum(dim=1))[:, None]
