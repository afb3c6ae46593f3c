"""LOST: single-object discovery from the similarity graph of patch features.

Siméoni et al., "Localizing Objects with Self-Supervised Transformers and no Labels", BMVC 2021
(arXiv 2109.14279); reference code ``object_discovery.py`` of github.com/valeoai/LOST.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from .components import Discovery, check_grid, seed_component


def lost_degrees(features: Tensor, similarity_bias: float = 0.0, block: int = 512) -> Tensor:
    """Degree of every patch in LOST's similarity graph: the number of other patches j with
    A[i, j] > 0, A = F F^T + ``similarity_bias`` (the reference zeroes the diagonal and the
    negative entries of A before counting).

    A is never held whole: row blocks of ``block`` patches are multiplied with the patches from
    their own block on, and each off-diagonal block is counted twice (along its rows for the
    block's patches, along its columns for the later ones), so only half of the N x N products
    are computed and each block is counted while it is in cache. At 64 x 64 patches that is ~3x
    faster than the whole matrix on two cores; the loop runs over blocks, not patches.

    Args:
        features: (B, N, C), float32 or float64.
        similarity_bias: added to every entry of A.
        block: rows per block.

    Returns:
        (B, N) int64.
    """
    b, n, _ = features.shape
    degree = torch.zeros(b, n, dtype=torch.int64, device=features.device)
    for start in range(0, n, block):
        stop = min(start + block, n)
        similarity = features[:, start:stop] @ features[:, start:].transpose(1, 2)
        if similarity_bias:
            similarity += similarity_bias
        positive = similarity > 0
        positive[:, :, : stop - start].diagonal(dim1=1, dim2=2).fill_(False)
        degree[:, start:stop] += positive.sum(dim=2)
        degree[:, stop:] += positive[:, :, stop - start :].sum(dim=1)
    return degree


def lost_scores(
    features: Tensor, k_patches: int = 100, similarity_bias: float = 0.0
) -> tuple[Tensor, Tensor]:
    """LOST's seed and seed-expansion map for a batch of images sharing one patch grid.

    With A = F F^T + ``similarity_bias`` (raw dot products, N x N per image):

    1. degree of patch i = number of j != i with A[i, j] > 0 (:func:`lost_degrees`);
    2. patches sorted by increasing degree, ties in index order (a stable sort; the reference's
       ``argsort`` of the negated degree gives the same order wherever the sort is stable);
    3. seed = the first patch; potentials = the first ``k_patches`` (all N when N is smaller);
    4. the potentials j with A[seed, j] > 0 (the seed itself included when A[seed, seed] > 0);
    5. map = the sum of their rows of A (only these k rows of A are computed here).

    Args:
        features: (B, N, C) patch features, N = h * w in row-major order; computed in float32
            at least.
        k_patches: number of lowest-degree patches considered for the expansion (LOST: 100).
        similarity_bias: added to every entry of A before steps 1-5. The registers paper
            (arXiv 2309.16588) changes LOST's similarity for DINOv2 without giving the value
            (dinov2 issue #381); a negative bias makes fewer pairs count as similar.

    Returns:
        seeds (B,) int64 patch indices and maps (B, N) float32 (float64 for float64 features).

    Raises:
        ValueError: ``k_patches`` < 1 or ``features`` is not 3-D.
    """
    if k_patches < 1:
        raise ValueError(f"k_patches must be >= 1, got {k_patches}")
    if features.ndim != 3:
        raise ValueError(f"features must be (B, N, C), got {tuple(features.shape)}")
    feats = features.detach()
    feats = feats.to(torch.promote_types(feats.dtype, torch.float32))
    degree = lost_degrees(feats, similarity_bias)
    order = torch.sort(degree, dim=1, stable=True).indices[:, :k_patches]  # (B, k)
    potentials = feats.gather(1, order.unsqueeze(-1).expand(-1, -1, feats.shape[-1]))
    rows = potentials @ feats.transpose(1, 2)  # (B, k, N): A at the potentials' rows
    if similarity_bias:
        rows += similarity_bias
    seeds = order[:, 0]
    similar = (rows[:, 0].gather(1, order) > 0).to(rows.dtype)  # (B, k): A[seed, potentials]
    return seeds, torch.bmm(similar.unsqueeze(1), rows).squeeze(1)


def lost(
    features: Tensor,
    patch_size: int,
    image_size: tuple[int, int],
    k_patches: int = 100,
    similarity_bias: float = 0.0,
) -> Discovery:
    """LOST on one image: seed, seed expansion (:func:`lost_scores`), then the 4-connected
    component of the positive map holding the seed and its box.

    Args:
        features: (h, w, C) patch features of one image, e.g. one item of
            :func:`~dinoreg_dense.discovery.discovery_features` (last block's keys for
            DINO / DINOv2, values for DeiT-III / OpenCLIP).
        patch_size: pixels per patch side (the backbone's ``patch_size``).
        image_size: (H, W) pixels of the image before its padding to a multiple of
            ``patch_size``; h = ceil(H / p), w = ceil(W / p). The box is clipped to it.
        k_patches, similarity_bias: see :func:`lost_scores`.

    Returns:
        :class:`~dinoreg_dense.discovery.Discovery`; ``scores`` is the summed similarity map.

    Raises:
        ValueError: the grid does not match ``image_size``; ``k_patches`` < 1; the seed's map
            entry is not positive (only possible when ``similarity_bias`` makes the seed's own
            similarity non-positive: LOST's "seed in the background component").
    """
    check_grid(features, patch_size, image_size)
    h, w, c = features.shape
    seeds, maps = lost_scores(features.reshape(1, h * w, c), k_patches, similarity_bias)
    scores = maps[0].reshape(h, w)
    seed = divmod(int(seeds[0]), w)
    return seed_component(scores > 0, seed, scores, patch_size, image_size)


def lost_batch(
    features: Tensor,
    patch_size: int,
    image_sizes: Sequence[tuple[int, int]],
    k_patches: int = 100,
    similarity_bias: float = 0.0,
) -> list[Discovery]:
    """:func:`lost` on a batch of images sharing one patch grid, the similarity graphs computed
    as one batched product.

    Args:
        features: (B, h, w, C), e.g. :func:`~dinoreg_dense.discovery.discovery_features`.
        image_sizes: B pairs (H, W); each must give the grid h x w (see :func:`lost`). Images
            padded further to share a batch would count the padding patches as image, so run
            those one by one.

    Returns:
        B :class:`~dinoreg_dense.discovery.Discovery`, same as :func:`lost` per image.

    Raises:
        ValueError: as :func:`lost`; also when ``len(image_sizes)`` != B.
    """
    if features.ndim != 4 or len(image_sizes) != features.shape[0]:
        raise ValueError(
            f"features must be (B, h, w, C) with one image size per item, got features "
            f"{tuple(features.shape)} and {len(image_sizes)} image sizes"
        )
    for item, size in zip(features, image_sizes, strict=True):
        check_grid(item, patch_size, size)
    b, h, w, c = features.shape
    seeds, maps = lost_scores(features.reshape(b, h * w, c), k_patches, similarity_bias)
    maps = maps.reshape(b, h, w)
    return [
        seed_component(scores > 0, divmod(int(seed), w), scores, patch_size, size)
        for seed, scores, size in zip(seeds.tolist(), maps, image_sizes, strict=True)
    ]
