"""TokenCut: single-object discovery as a normalized cut of the patch graph.

Wang et al., "Self-Supervised Transformers for Unsupervised Object Discovery using Normalized
Cut", CVPR 2022 (arXiv 2202.11539); reference code ``object_discovery.py`` of
github.com/YangtaoWANG95/TokenCut.
"""

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor

from .components import Discovery, check_grid, seed_component


def tokencut_eigenvector(features: Tensor, tau: float = 0.2, eps: float = 1e-5) -> Tensor:
    """Second-smallest generalized eigenvector of the thresholded cosine-similarity graph.

    W[i, j] = 1 where the cosine similarity of patches i and j exceeds ``tau``, ``eps``
    elsewhere; D = diag(W 1). The generalized problem (D - W) x = lambda D x is solved as the
    symmetric one (I - D^-1/2 W D^-1/2) y = lambda y with x = D^-1/2 y (same eigenvalues, and x
    is the reference's eigenvector up to sign: both have x^T D x = 1), by LAPACK through
    ``scipy.linalg.eigh(..., subset_by_index=[1, 1])`` in float64: about 0.4-1 s at 37 x 37
    patches and tens of seconds at 64 x 64 on two cores.

    Args:
        features: (N, C) patch features.
        tau: similarity threshold (TokenCut: 0.2).
        eps: weight of the pairs at or below ``tau`` (TokenCut: 1e-5), keeps the graph connected.

    Returns:
        (N,) float64 eigenvector, sign as LAPACK returns it.
    """
    feats = F.normalize(features.detach().float(), dim=-1)
    cosine = feats @ feats.T
    weights = torch.where(cosine > tau, 1.0, eps).to(torch.float64)
    inv_sqrt_degree = weights.sum(dim=1).rsqrt()
    laplacian = -(inv_sqrt_degree[:, None] * weights * inv_sqrt_degree[None, :])
    laplacian.diagonal().add_(1.0)
    _, vectors = scipy.linalg.eigh(laplacian.cpu().numpy(), subset_by_index=[1, 1])
    return torch.from_numpy(vectors[:, 0]).to(inv_sqrt_degree.device) * inv_sqrt_degree


def tokencut(
    features: Tensor,
    patch_size: int,
    image_size: tuple[int, int],
    tau: float = 0.2,
    eps: float = 1e-5,
) -> Discovery:
    """TokenCut on one image.

    Steps: the eigenvector x of :func:`tokencut_eigenvector`; bipartition x > mean(x); seed =
    argmax |x| (first index on ties); when the seed is on the low side, both the bipartition and
    x flip (the reference's rule, so x is returned with the object on its high side and the
    object side of a flip is x <= mean); the 4-connected component of the seed's side holding
    the seed, and its box.

    Args:
        features: (h, w, C) patch features of one image (TokenCut: last block's keys).
        patch_size: pixels per patch side.
        image_size: (H, W) pixels of the image before padding; h = ceil(H / p), w = ceil(W / p).
        tau, eps: see :func:`tokencut_eigenvector`.

    Returns:
        :class:`~dinoreg_dense.discovery.Discovery`; ``scores`` is the signed eigenvector.

    Raises:
        ValueError: the grid does not match ``image_size``.
    """
    check_grid(features, patch_size, image_size)
    h, w, c = features.shape
    vector = tokencut_eigenvector(features.reshape(h * w, c), tau, eps).cpu()
    foreground = vector > vector.mean()
    seed = int(np.argmax(vector.abs().numpy()))
    if not foreground[seed]:
        foreground, vector = ~foreground, -vector
    scores = vector.reshape(h, w)
    return seed_component(foreground.reshape(h, w), divmod(seed, w), scores, patch_size, image_size)
