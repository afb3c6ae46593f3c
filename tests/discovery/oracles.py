"""LOST and TokenCut written again from the papers in plain NumPy with loops, as independent
references for the tensor implementations (not the reference repositories' code)."""

from collections import deque

import numpy as np

NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # 4-connectivity


def flood_fill(foreground: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """(h, w) bool region of ``foreground`` reachable from ``seed`` through edge neighbours."""
    h, w = foreground.shape
    region = np.zeros_like(foreground, dtype=bool)
    queue = deque([seed])
    region[seed] = True
    while queue:
        row, col = queue.popleft()
        for dr, dc in NEIGHBOURS:
            r, c = row + dr, col + dc
            if 0 <= r < h and 0 <= c < w and foreground[r, c] and not region[r, c]:
                region[r, c] = True
                queue.append((r, c))
    return region


def region_box(region: np.ndarray, patch_size: int, image_size: tuple[int, int]) -> list[float]:
    """Pixel box x0, y0, x1, y1 (ends exclusive) of a patch region, clipped to the image."""
    rows = [r for r in range(region.shape[0]) if region[r].any()]
    cols = [c for c in range(region.shape[1]) if region[:, c].any()]
    height, width = image_size
    return [
        cols[0] * patch_size,
        rows[0] * patch_size,
        min((cols[-1] + 1) * patch_size, width),
        min((rows[-1] + 1) * patch_size, height),
    ]


def lost_oracle(
    features: np.ndarray,
    patch_size: int,
    image_size: tuple[int, int],
    k_patches: int = 100,
    bias: float = 0.0,
) -> dict | None:
    """LOST (Siméoni et al. 2021, Sec. 3): the seed is the patch with the fewest positively
    correlated other patches; the k lowest-degree patches correlated positively with the seed
    each add their similarity row; the positive part's component holding the seed is the box.

    Returns None when the seed's own map entry is not positive (a negative bias can do that)."""
    h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float64)
    n = h * w
    similarity = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            similarity[i, j] = float(np.dot(flat[i], flat[j])) + bias
    degree = [sum(1 for j in range(n) if j != i and similarity[i, j] > 0) for i in range(n)]
    order = sorted(range(n), key=lambda i: (degree[i], i))
    seed = order[0]
    similars = [j for j in order[:k_patches] if similarity[seed, j] > 0]
    summed = np.zeros(n)
    for j in similars:
        summed += similarity[j]
    if summed[seed] <= 0:
        return None
    seed_rc = divmod(seed, w)
    region = flood_fill((summed > 0).reshape(h, w), seed_rc)
    return dict(
        box=region_box(region, patch_size, image_size),
        mask=region,
        seed=seed_rc,
        scores=summed.reshape(h, w),
        degree=np.array(degree).reshape(h, w),
    )


def tokencut_oracle(
    features: np.ndarray,
    patch_size: int,
    image_size: tuple[int, int],
    tau: float = 0.2,
    eps: float = 1e-5,
) -> dict | None:
    """TokenCut (Wang et al. 2022, Sec. 3): the Fiedler vector of the random-walk Laplacian
    D^-1 (D - W) (the generalized problem's eigenvectors, found here with a non-symmetric solver
    instead of a symmetric one), split at its mean, the side holding its largest |entry|.

    Returns None when the case is ambiguous: a cosine within 1e-5 of tau, a repeated second
    eigenvalue, two largest |entries| within 1e-9, or an entry within 1e-9 of the mean.
    """
    h, w, c = features.shape
    flat = features.reshape(h * w, c).astype(np.float64)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    cosine = unit @ unit.T
    if np.abs(cosine - tau).min() < 1e-5:
        return None
    weights = np.where(cosine > tau, 1.0, eps)
    degree = weights.sum(axis=1)
    walk = (np.diag(degree) - weights) / degree[:, None]
    values, vectors = np.linalg.eig(walk)
    order = np.argsort(values.real)
    if values.real[order[2]] - values.real[order[1]] < 1e-6:
        return None
    vector = vectors[:, order[1]].real
    magnitude = np.sort(np.abs(vector))
    if magnitude[-1] - magnitude[-2] < 1e-9 * magnitude[-1]:
        return None
    if np.abs(vector - vector.mean()).min() < 1e-9 * magnitude[-1]:
        return None
    foreground = vector > vector.mean()
    seed = int(np.argmax(np.abs(vector)))
    if not foreground[seed]:
        foreground = ~foreground
    seed_rc = divmod(seed, w)
    region = flood_fill(foreground.reshape(h, w), seed_rc)
    return dict(box=region_box(region, patch_size, image_size), mask=region, seed=seed_rc)
