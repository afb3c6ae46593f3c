"""LOST on similarity matrices computed by hand, and against a loop-based NumPy version written
from the paper (tests/discovery/oracles.py) on random and structured features."""

import numpy as np
import pytest
import torch

from dinoreg_dense.discovery import lost, lost_batch, lost_degrees, lost_scores

from .oracles import lost_oracle

P = 14


def grid_features(values: list[list[float]]) -> torch.Tensor:
    """(h, w, 1) features: A[i, j] = f_i f_j, positive exactly between equal signs."""
    return torch.tensor(values, dtype=torch.float32).unsqueeze(-1)


# Three negative patches among nine positive ones: each negative patch has degree 2, each
# positive one 8. (1, 1) and (1, 2) touch; (2, 3) only touches (1, 2) by a corner.
SIGNS = [
    [1, 1, 1, 1],
    [1, -1, -1, 1],
    [1, 1, 1, -1],
]


def test_seed_is_the_first_lowest_degree_patch_and_the_box_its_4_connected_component():
    found = lost(grid_features(SIGNS), P, (3 * P, 4 * P))
    assert found.seed == (1, 1)  # index 5: first of the three patches of degree 2
    expected_mask = torch.zeros(3, 4, dtype=torch.bool)
    expected_mask[1, 1:3] = True  # 8-connectivity would add (2, 3)
    assert torch.equal(found.mask, expected_mask)
    torch.testing.assert_close(found.box, torch.tensor([1.0 * P, P, 3 * P, 2 * P]))
    # similars = the three negative patches, so the map is -3 f.
    torch.testing.assert_close(found.scores, -3 * grid_features(SIGNS)[..., 0])
    assert found.box.dtype == torch.float32 and found.mask.dtype == torch.bool


def test_ties_go_to_the_first_index():
    # Mirrored left-right: the isolated negative patch now comes first in row-major order.
    mirrored = [row[::-1] for row in SIGNS[::-1]]
    found = lost(grid_features(mirrored), P, (3 * P, 4 * P))
    assert found.seed == (0, 0)
    assert found.mask.sum() == 1
    torch.testing.assert_close(found.box, torch.tensor([0.0, 0.0, P, P]))


def test_zero_similarity_does_not_count_towards_the_degree():
    # Nine patches along e0 and three along e1: across the groups A = 0 exactly. Counted with
    # ">" the e1 patches have degree 2 and hold the seed; counted with ">=" every patch would
    # have degree 11 and the seed would be patch 0.
    features = torch.zeros(3, 4, 2)
    features[..., 0] = 1.0
    for row, col in [(2, 1), (2, 2), (2, 3)]:
        features[row, col] = torch.tensor([0.0, 1.0])
    found = lost(features, P, (3 * P, 4 * P))
    assert found.seed == (2, 1)
    torch.testing.assert_close(found.box, torch.tensor([1.0 * P, 2 * P, 4 * P, 3 * P]))


def test_self_similarity_does_not_count_towards_the_degree():
    # Bias -1 on x, y, z1, z2 = [2, 0], [0, 0.9], [1, 0], [0, 2]: off the diagonal each patch
    # has one similar patch (x-z1, y-z2), so the seed is x, the first; counting the diagonal
    # (A[y, y] = -0.19 and A[z1, z1] = 0 are not > 0) would make y the only patch of degree 1.
    features = torch.tensor([[[2.0, 0.0], [0.0, 0.9], [1.0, 0.0], [0.0, 2.0]]])
    found = lost(features, P, (P, 4 * P), similarity_bias=-1.0)
    assert found.seed == (0, 0)
    torch.testing.assert_close(found.scores, torch.tensor([[4.0, -2.0, 1.0, -2.0]]))
    torch.testing.assert_close(found.box, torch.tensor([0.0, 0.0, P, P]))


def chain_features(background: int = 5) -> torch.Tensor:
    """One row of patches s, t, u, b, b, ... (2-D features) built so that only the expansion
    through t reaches u: A[s, u] = -0.5, A[t, u] = 1.5; degrees s 1, t 2, b 5, u 6."""
    s, t, u, b = [1.0, 0.0], [1.0, 2.0], [-0.5, 1.0], [-1.0, -0.1]
    return torch.tensor([[s, t, u] + [b] * background])


@pytest.mark.parametrize("k_patches, width", [(1, 2), (2, 3), (3, 3), (1000, 3)])
def test_k_lowest_degree_patches_limit_the_expansion(k_patches, width):
    features = chain_features()
    found = lost(features, P, (P, 8 * P), k_patches=k_patches)
    assert found.seed == (0, 0)
    torch.testing.assert_close(found.box, torch.tensor([0.0, 0.0, width * P, P]))


def test_box_is_clipped_to_an_image_that_is_not_a_multiple_of_the_patch_size():
    # A 40 x 30 image is padded to a 3 x 3 grid (42 x 42 pixels); the object fills the last
    # row and column, so the box would reach 42 without the clip.
    signs = [[1, 1, 1], [1, 1, -1], [1, -1, -1]]
    found = lost(grid_features(signs), P, (40, 30))
    torch.testing.assert_close(found.box, torch.tensor([1.0 * P, 1.0 * P, 30.0, 40.0]))


def test_positive_bias_equals_a_constant_feature_channel():
    # A + b = [F, sqrt(b)] [F, sqrt(b)]^T for b > 0.
    features = torch.randn(2, 30, 8, dtype=torch.float64)
    bias = 2.5
    extended = torch.cat([features, torch.full((2, 30, 1), bias**0.5, dtype=torch.float64)], -1)
    seeds, maps = lost_scores(features, similarity_bias=bias)
    seeds_ext, maps_ext = lost_scores(extended)
    assert torch.equal(seeds, seeds_ext)
    torch.testing.assert_close(maps, maps_ext)


def test_seed_outside_the_map_raises():
    # A bias below every similarity leaves no similar patch, not even the seed itself.
    with pytest.raises(ValueError, match="seed"):
        lost(grid_features(SIGNS), P, (3 * P, 4 * P), similarity_bias=-10.0)


@pytest.mark.parametrize("image_size", [(3 * P + 1, 4 * P), (2 * P, 4 * P)])
def test_image_size_must_match_the_grid(image_size):
    with pytest.raises(ValueError, match="grid"):
        lost(grid_features(SIGNS), P, image_size)


def test_k_patches_must_be_positive():
    with pytest.raises(ValueError, match="k_patches"):
        lost(grid_features(SIGNS), P, (3 * P, 4 * P), k_patches=0)


def structured_features(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """A background cluster, one rectangular object of another cluster, Gaussian noise."""
    background, foreground = rng.normal(size=c), rng.normal(size=c)
    features = background + 0.8 * rng.normal(size=(h, w, c))
    r0, c0 = rng.integers(0, h - 2), rng.integers(0, w - 2)
    r1, c1 = rng.integers(r0 + 1, h + 1), rng.integers(c0 + 1, w + 1)
    features[r0:r1, c0:c1] += foreground - background
    return features


CASES = [
    # kind, h, w, channels, k_patches, bias, image size offset (pixels cut from H, W)
    ("random", 6, 7, 8, 100, 0.0, (0, 0)),
    ("random", 9, 5, 16, 10, 0.0, (5, 13)),
    ("random", 8, 8, 16, 100, -6.0, (0, 3)),
    ("structured", 10, 12, 16, 100, 0.0, (7, 0)),
    ("structured", 12, 9, 32, 20, 0.0, (0, 0)),
    ("structured", 11, 11, 8, 100, -1.0, (13, 13)),
]


@pytest.mark.parametrize("kind, h, w, c, k_patches, bias, cut", CASES)
def test_same_boxes_as_the_numpy_oracle(kind, h, w, c, k_patches, bias, cut):
    rng = np.random.default_rng(h * 100 + w)
    outcomes = set()
    for trial in range(6):
        if kind == "random":
            features = rng.normal(size=(h, w, c))
        else:
            features = structured_features(rng, h, w, c)
        image_size = (h * P - cut[0], w * P - cut[1])
        expected = lost_oracle(features, P, image_size, k_patches, bias)
        if expected is None:
            with pytest.raises(ValueError, match="seed"):
                lost(torch.from_numpy(features), P, image_size, k_patches, bias)
            outcomes.add("seed outside the map")
            continue
        outcomes.add("box")
        found = lost(torch.from_numpy(features), P, image_size, k_patches, bias)
        assert found.seed == expected["seed"], trial
        assert found.box.tolist() == expected["box"], trial
        assert np.array_equal(found.mask.numpy(), expected["mask"]), trial
        np.testing.assert_allclose(found.scores.numpy(), expected["scores"], rtol=1e-5, atol=1e-4)
        # float32 features reach the same box unless a similarity sits within rounding of 0.
        found32 = lost(torch.from_numpy(features).float(), P, image_size, k_patches, bias)
        assert found32.box.tolist() == expected["box"], trial
    assert "box" in outcomes


def test_batch_equals_one_image_at_a_time():
    features = torch.randn(3, 5, 6, 12)
    sizes = [(5 * P, 6 * P), (5 * P - 3, 6 * P), (5 * P, 6 * P - 13)]
    batched = lost_batch(features, P, sizes, k_patches=7)
    for item, size, found in zip(features, sizes, batched, strict=True):
        single = lost(item, P, size, k_patches=7)
        assert found.seed == single.seed
        assert torch.equal(found.box, single.box)
        assert torch.equal(found.mask, single.mask)
        torch.testing.assert_close(found.scores, single.scores)
    with pytest.raises(ValueError, match="image size"):
        lost_batch(features, P, sizes[:2])


@pytest.mark.parametrize("block", [1, 5, 8, 37, 512])
@pytest.mark.parametrize("bias", [0.0, -3.0])
def test_blocked_degrees_count_every_pair_once_per_row(block, bias):
    # 37 patches: blocks that do not divide N, a block per patch, one block for all.
    features = torch.randn(2, 37, 6, dtype=torch.float64)
    similarity = features @ features.transpose(1, 2) + bias
    positive = similarity > 0
    positive.diagonal(dim1=1, dim2=2).fill_(False)
    torch.testing.assert_close(lost_degrees(features, bias, block=block), positive.sum(dim=2))
    expected = lost_oracle(features[0].reshape(37, 1, 6).numpy(), P, (37 * P, P), bias=bias)
    if expected is not None:
        assert (
            lost_degrees(features[:1], bias, block)[0].tolist()
            == expected["degree"].ravel().tolist()
        )
