"""Mask2Former's inference as pure tensor functions: semantic marginalisation, top-k instances,
boxes from masks.

Cheng et al., "Masked-attention Mask Transformer for Universal Image Segmentation" (CVPR 2022,
arXiv 2112.01527), sec. 4 "Inference"; reference ``mask2former/maskformer_model.py``
(``semantic_inference``, ``instance_inference``). Class logits have K + 1 entries, the last one
"no object", which every function here drops after the softmax.
"""

import torch
from torch import Tensor


def semantic_inference(class_logits: Tensor, mask_logits: Tensor) -> Tensor:
    """Per-pixel class scores: sum over queries of p(class | query) x sigmoid(mask).

    Args:
        class_logits: (B, Q, K + 1) class logits, the last one "no object".
        mask_logits: (B, Q, H, W) mask logits.

    Returns:
        (B, K, H, W) scores in [0, Q]: ``einsum("bqk,bqhw->bkhw", softmax(class)[..., :K],
        sigmoid(mask))``, as the reference's ``semantic_inference``.
    """
    class_probs = class_logits.softmax(-1)[..., :-1]
    return torch.einsum("bqk,bqhw->bkhw", class_probs, mask_logits.sigmoid())


def top_query_classes(class_logits: Tensor, top_k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``top_k`` (query, class) pairs of one image with the highest class probability.

    Every query may contribute several classes (the reference's ``instance_inference``: top-k
    over the flattened Q x K softmax probabilities without "no object").

    Args:
        class_logits: (Q, K + 1) class logits of one image.
        top_k: pairs to keep (at most Q x K are kept).

    Returns:
        ``(class_scores (k,), labels (k,) int64, query_indices (k,) int64)``, by decreasing
        class probability.
    """
    num_classes = class_logits.shape[-1] - 1
    probs = class_logits.softmax(-1)[:, :-1].flatten()
    class_scores, flat_indices = probs.topk(min(top_k, probs.numel()))
    return class_scores, flat_indices % num_classes, flat_indices // num_classes


def mask_scores(mask_logits: Tensor, masks: Tensor) -> Tensor:
    """Mean mask probability inside each binary mask (0 for an empty one).

    Args:
        mask_logits: (N, H, W) mask logits.
        masks: (N, H, W) bool, the thresholded masks.

    Returns:
        (N,) ``sum(sigmoid(logits) * mask) / (sum(mask) + 1e-6)``, the reference's
        ``mask_scores_per_image``.
    """
    inside = masks.flatten(1).to(mask_logits.dtype)
    return (mask_logits.sigmoid().flatten(1) * inside).sum(1) / (inside.sum(1) + 1e-6)


def masks_to_boxes(masks: Tensor) -> Tensor:
    """Tight pixel boxes ``x0, y0, x1, y1`` (end exclusive) of (N, H, W) bool masks.

    The same convention as the datasets' boxes (COCO's ``x + w``); an empty mask gives
    ``(0, 0, 0, 0)``.

    Returns:
        (N, 4) float32.
    """
    boxes = masks.new_zeros((masks.shape[0], 4), dtype=torch.float32)
    if masks.numel() == 0:
        return boxes
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (N, H), (N, W)
    present = rows.any(dim=1)
    height, width = masks.shape[-2:]
    row_index = torch.arange(height, device=masks.device)
    col_index = torch.arange(width, device=masks.device)
    x0 = torch.where(cols, col_index, width).min(dim=1).values
    x1 = torch.where(cols, col_index, -1).max(dim=1).values + 1
    y0 = torch.where(rows, row_index, height).min(dim=1).values
    y1 = torch.where(rows, row_index, -1).max(dim=1).values + 1
    stacked = torch.stack([x0, y0, x1, y1], dim=1).float()
    return torch.where(present[:, None], stacked, boxes)


def instance_inference(
    class_scores: Tensor, labels: Tensor, mask_logits: Tensor
) -> dict[str, Tensor]:
    """Instances of the selected (query, class) pairs of one image.

    Args:
        class_scores: (k,) class probabilities of the pairs (:func:`top_query_classes`).
        labels: (k,) int64 classes of the pairs.
        mask_logits: (k, H, W) mask logits of the pairs' queries at the output size.

    Returns:
        ``labels`` (k,), ``masks`` (k, H, W) bool (sigmoid > 0.5), ``scores`` (k,) = class
        probability x :func:`mask_scores`, ``bboxes`` (k, 4) float32 pixel ``x0, y0, x1, y1``
        of the masks (the detection view of the same output), in the order of the pairs.
    """
    masks = mask_logits > 0
    return dict(
        labels=labels,
        masks=masks,
        scores=class_scores * mask_scores(mask_logits, masks),
        bboxes=masks_to_boxes(masks),
    )
