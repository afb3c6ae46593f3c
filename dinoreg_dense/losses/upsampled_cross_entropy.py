"""Cross-entropy of bilinearly upsampled logits, without materialising the upsampled logits.

DINOv2's linear probe upsamples (B, K, h, w) patch-grid logits to the label size (e.g. 512 x 512)
and takes a per-pixel cross-entropy. Done naively that is ~6 passes over a (B, K, H, W) tensor
(interpolate, log-softmax, NLL and their backwards) and costs more than the frozen backbone's
forward. Bilinear upsampling (align_corners=False) is separable, ``U_h z U_w^T``, and every
output row is a linear interpolation of two neighbouring input rows. So this module upsamples
the columns once with a matmul into a classes-last (h, B, W, K) tensor, then walks the output
rows in runs that share the same two source rows: per run and image it forms the band with one
``addcmul``, takes a fused softmax over the contiguous class axis, and returns the band's
gradient to its two source rows with one small matmul. Only (h, B, W, K) tensors stay alive.

The loop pays a few kernel launches per band and a softmax over a short contiguous class axis,
so it only wins with many classes and long bands, and only on CPU, where it was measured:
:func:`fused_path_is_faster` chooses it, :func:`interpolated_cross_entropy` is the plain path.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from ..structures import IGNORE_INDEX


def linear_interp_matrix(src: int, dst: int, device: torch.device | None = None) -> Tensor:
    """(dst, src) matrix of 1-D linear interpolation weights identical to ``F.interpolate``
    (mode 'linear', align_corners=False) from ``src`` to ``dst`` samples."""
    eye = torch.eye(src, device=device).unsqueeze(0)  # (1, src, src): each input as a channel
    return F.interpolate(eye, size=dst, mode="linear", align_corners=False)[0].T.contiguous()


def _row_runs(src: int, dst: int, rows: int, max_rows: int) -> list[tuple[int, int, int, Tensor]]:
    """Output rows ``0..rows-1`` of a ``src -> dst`` linear interpolation, grouped into runs
    ``(start, stop, lo, t)``: row ``r`` in ``[start, stop)`` equals
    ``(1 - t[r - start]) * in[lo] + t[r - start] * in[min(lo + 1, src - 1)]``.
    Runs are at most ``max_rows`` long."""
    weights = linear_interp_matrix(src, dst)[:rows]  # (rows, src)
    lo = (weights > 0).int().argmax(dim=1)  # first source row with a non-zero weight
    hi = (lo + 1).clamp(max=src - 1)
    t = torch.where(hi == lo, 0.0, weights.gather(1, hi[:, None])[:, 0])
    runs, lo_list, start = [], lo.tolist(), 0
    for row in range(1, rows + 1):
        if row == rows or lo_list[row] != lo_list[start] or row - start == max_rows:
            runs.append((start, row, lo_list[start], t[start:row]))
            start = row
    return runs


class _UpsampledCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, *args: object) -> Tensor:
        # The loss is computed in float32 even inside an autocast region (bf16 training).
        with torch.autocast(logits.device.type, enabled=False):
            return _UpsampledCrossEntropy._forward(ctx, logits, *args)

    @staticmethod
    def _forward(
        ctx,
        logits: Tensor,
        labels: Tensor,
        upsample_size: tuple[int, int],
        ignore_index: int,
        rows_per_chunk: int,
    ) -> Tensor:
        b, k, h, w = logits.shape
        height, width = labels.shape[-2:]
        u_w = linear_interp_matrix(w, upsample_size[1], logits.device)[:width]  # (W, w)
        # Columns upsampled once, source rows first and classes last: (h, B, W, K).
        z_w = u_w @ logits.detach().float().permute(2, 0, 3, 1)
        need_grad = ctx.needs_input_grad[0]
        grad_z_w = torch.zeros_like(z_w) if need_grad else None
        valid = (labels != ignore_index).transpose(0, 1)  # (H, B, W)
        targets = torch.where(valid, labels.transpose(0, 1), 0).unsqueeze(-1)  # (H, B, W, 1)
        num_valid = int(valid.sum())
        total = z_w.new_zeros(())
        for start, stop, lo, t in _row_runs(h, upsample_size[0], height, rows_per_chunk):
            hi = min(lo + 1, h - 1)
            t = t.to(z_w.device)
            pair_weights = torch.stack([1 - t, t])  # (2, R)
            for image in range(b):
                low, high = z_w[lo, image], z_w[hi, image]  # (W, K)
                band = torch.addcmul(low, t.view(-1, 1, 1), high - low)  # (R, W, K)
                probs = torch.softmax(band, dim=-1)
                target = targets[start:stop, image]  # (R, W, 1)
                band_valid = valid[start:stop, image]  # (R, W)
                picked = probs.gather(-1, target)[..., 0]
                loss = -picked.log()
                underflow = picked == 0
                if underflow.any():  # softmax underflowed: exact log-sum-exp for those pixels
                    logit = band.gather(-1, target)[..., 0]
                    loss[underflow] = torch.logsumexp(band[underflow], -1) - logit[underflow]
                every_pixel = bool(band_valid.all())
                total += loss.sum() if every_pixel else (loss * band_valid).sum()
                if need_grad:  # softmax minus one-hot, zero on ignored pixels
                    probs.scatter_add_(-1, target, torch.full_like(probs[..., :1], -1.0))
                    if not every_pixel:
                        probs.mul_(band_valid.unsqueeze(-1))
                    grad = (pair_weights @ probs.view(stop - start, -1)).view(2, width, k)
                    grad_z_w[lo, image] += grad[0]
                    grad_z_w[hi, image] += grad[1]
        scale = 1.0 / max(num_valid, 1)
        if need_grad:
            grad_logits = (u_w.T @ grad_z_w).permute(1, 3, 0, 2) * scale  # (B, K, h, w)
            ctx.save_for_backward(grad_logits.to(logits.dtype))
        return total * scale

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        (grad_logits,) = ctx.saved_tensors
        return grad_logits * grad_output, None, None, None, None


# Measured on a 2-core Xeon (AVX-512), 1 and 2 threads (benchmarks/README.md,
# `train_step.py --loss --grid`): the fused path is 1.2-6x faster from 16 classes once a class
# map of the upsampled image holds >= 2^19 values, and 1.4-20x slower with fewer classes, smaller
# images or 2x upsampling (bands of two rows).
FUSED_MIN_CLASSES = 16
FUSED_MIN_VALUES_PER_IMAGE = 2**19
FUSED_MIN_UPSAMPLING = 4


def fused_path_is_faster(
    num_classes: int, grid_rows: int, upsample_size: tuple[int, int], device_type: str
) -> bool:
    """Whether :func:`upsampled_cross_entropy` beats :func:`interpolated_cross_entropy`.

    Args:
        num_classes: K of the (B, K, h, w) logits.
        grid_rows: h, the logits' rows.
        upsample_size: (H', W') the logits are upsampled to.
        device_type: ``logits.device.type``; the fused path was only measured on ``'cpu'``.

    Returns:
        True on CPU when K >= ``FUSED_MIN_CLASSES``, K * H' * W' >= ``FUSED_MIN_VALUES_PER_IMAGE``
        and H' >= ``FUSED_MIN_UPSAMPLING`` * h; False otherwise. The batch size does not enter:
        both paths' costs grow linearly with it.
    """
    height, width = upsample_size
    return (
        device_type == "cpu"
        and num_classes >= FUSED_MIN_CLASSES
        and num_classes * height * width >= FUSED_MIN_VALUES_PER_IMAGE
        and height >= FUSED_MIN_UPSAMPLING * grid_rows
    )


def _checked_size(labels: Tensor, upsample_size: tuple[int, int] | None) -> tuple[int, int]:
    size = tuple(upsample_size) if upsample_size is not None else tuple(labels.shape[-2:])
    if size[0] < labels.shape[-2] or size[1] < labels.shape[-1]:
        raise ValueError(f"upsample_size {size} is smaller than the labels {labels.shape[-2:]}")
    return size


def interpolated_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    upsample_size: tuple[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """The plain path of :func:`upsampled_cross_entropy` (same arguments and result):
    ``F.interpolate`` to (B, K, H', W'), crop to the labels, ``F.cross_entropy``; in float32 at
    least, also inside an autocast region."""
    size = _checked_size(labels, upsample_size)
    height, width = labels.shape[-2:]
    with torch.autocast(logits.device.type, enabled=False):
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return F.cross_entropy(up[..., :height, :width], labels, ignore_index=ignore_index)


def upsampled_cross_entropy(
    logits: Tensor,
    labels: Tensor,
    upsample_size: tuple[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
    rows_per_chunk: int | None = None,
) -> Tensor:
    """Mean cross-entropy of ``logits`` upsampled bilinearly to ``upsample_size`` and cropped to
    the labels' size, over pixels whose label is not ``ignore_index``.

    Equals ``F.cross_entropy(F.interpolate(logits, upsample_size, mode='bilinear')[..., :H, :W],
    labels, ignore_index=ignore_index)`` up to float rounding (0 if every pixel is ignored).

    Args:
        logits: (B, K, h, w) patch-grid logits.
        labels: (B, H, W) int64 class indices.
        upsample_size: (H', W') >= (H, W) the logits are resized to before cropping (the padded
            input size); default (H, W).
        ignore_index: label excluded from the loss.
        rows_per_chunk: at most this many output rows (of one image) are formed at once; by
            default all rows between the same two source rows (about ``H / h``).

    Returns:
        Scalar float32 loss; its gradient flows to ``logits``.
    """
    size = _checked_size(labels, upsample_size)
    if rows_per_chunk is None:
        rows_per_chunk = labels.shape[-2]
    return _UpsampledCrossEntropy.apply(logits, labels, size, ignore_index, rows_per_chunk)
