"""TokenCut on a two-cluster graph whose eigenvector is known in closed form, and against a
NumPy version written from the paper (tests/discovery/oracles.py) on random and structured
features."""

import numpy as np
import pytest
import torch

from dinoreg_dense.discovery import tokencut, tokencut_eigenvector

from .oracles import tokencut_oracle
from .test_lost import structured_features

P = 16


def two_clusters(h: int, w: int, rows: slice, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, w, 3) features: e0 on the object rectangle, e1 elsewhere (cosine 0 across), and the
    object mask."""
    obj = torch.zeros(h, w, dtype=torch.bool)
    obj[rows, cols] = True
    features = torch.zeros(h, w, 3)
    features[..., 1] = 1.0
    features[obj] = torch.tensor([1.0, 0.0, 0.0])
    return features, obj


def test_eigenvector_of_two_clusters_is_the_closed_form_one():
    # W = 1 inside each cluster, eps across; D-orthogonality to the constant vector makes the
    # second eigenvector constant per cluster with x_obj * n_obj * d_obj = -x_bg * n_bg * d_bg.
    features, obj = two_clusters(5, 6, slice(1, 3), slice(2, 5))
    eps = 1e-5
    n_obj, n_bg = int(obj.sum()), int((~obj).sum())
    d_obj, d_bg = n_obj + eps * n_bg, n_bg + eps * n_obj
    vector = tokencut_eigenvector(features.reshape(30, 3), tau=0.2, eps=eps).reshape(5, 6)
    x_obj, x_bg = vector[obj], vector[~obj]
    torch.testing.assert_close(x_obj, x_obj[0].expand_as(x_obj))
    torch.testing.assert_close(x_bg, x_bg[0].expand_as(x_bg))
    ratio = -(n_bg * d_bg) / (n_obj * d_obj)
    torch.testing.assert_close(x_obj[0] / x_bg[0], torch.tensor(ratio, dtype=torch.float64))
    # Normalised as the generalized solver normalises: x^T D x = 1.
    norm = n_obj * d_obj * x_obj[0] ** 2 + n_bg * d_bg * x_bg[0] ** 2
    torch.testing.assert_close(norm, torch.tensor(1.0, dtype=torch.float64))


def test_smaller_cluster_is_the_object_and_its_box_is_returned():
    features, obj = two_clusters(5, 6, slice(1, 3), slice(2, 5))
    found = tokencut(features, P, (5 * P, 6 * P))
    assert obj[found.seed]
    assert torch.equal(found.mask, obj)
    torch.testing.assert_close(found.box, torch.tensor([2.0 * P, P, 5 * P, 3 * P]))
    assert (found.scores[obj] > 0).all() and (found.scores[~obj] < 0).all()


def test_only_the_seeds_component_is_kept_and_the_box_is_clipped():
    # The object side has two parts touching by a corner only; the seed is in the larger one
    # (entries are equal in magnitude per cluster, so the first index wins), at the image's
    # bottom right, whose box is clipped to the 75 x 90 image.
    features, obj = two_clusters(5, 6, slice(3, 5), slice(4, 6))
    features[2, 3] = torch.tensor([1.0, 0.0, 0.0])
    found = tokencut(features, P, (75, 90))
    assert found.seed == (2, 3)
    assert found.mask.sum() == 1 and found.mask[2, 3]
    torch.testing.assert_close(found.box, torch.tensor([3.0 * P, 2.0 * P, 4.0 * P, 3.0 * P]))

    features, obj = two_clusters(5, 6, slice(3, 5), slice(4, 6))
    found = tokencut(features, P, (75, 90))
    torch.testing.assert_close(found.box, torch.tensor([4.0 * P, 3.0 * P, 90.0, 75.0]))


def test_image_size_must_match_the_grid():
    features, _ = two_clusters(5, 6, slice(1, 3), slice(2, 5))
    with pytest.raises(ValueError, match="grid"):
        tokencut(features, P, (6 * P, 6 * P))


CASES = [
    # kind, h, w, channels, tau, image size offset
    ("random", 6, 7, 8, 0.2, (0, 0)),
    ("random", 9, 5, 16, 0.0, (5, 13)),
    ("random", 8, 8, 4, 0.4, (0, 3)),
    ("structured", 10, 12, 16, 0.2, (7, 0)),
    ("structured", 12, 9, 32, 0.3, (0, 0)),
    ("structured", 11, 11, 8, 0.2, (13, 13)),
]


def compare_with_oracle(kind: str, h: int, w: int, c: int, tau: float, cut: tuple) -> int:
    """Six trials of one case; returns how many had the seed on the eigenvector's low side."""
    rng = np.random.default_rng(h * 100 + w + 1)
    compared = flipped = 0
    for trial in range(6):
        if kind == "random":
            features = rng.normal(size=(h, w, c))
        else:  # more noise than LOST's cases: exact cliques would tie the largest |entries|
            features = structured_features(rng, h, w, c) + rng.normal(size=(h, w, c))
        image_size = (h * P - cut[0], w * P - cut[1])
        expected = tokencut_oracle(features, P, image_size, tau)
        if expected is None:  # an ambiguous case (see the oracle)
            continue
        found = tokencut(torch.from_numpy(features), P, image_size, tau)
        assert found.seed == expected["seed"], trial
        assert found.box.tolist() == expected["box"], trial
        assert np.array_equal(found.mask.numpy(), expected["mask"]), trial
        compared += 1
        raw = tokencut_eigenvector(torch.from_numpy(features).reshape(h * w, c), tau)
        flipped += bool(raw.reshape(h, w)[found.seed] < 0)
    assert compared >= 4
    return flipped


@pytest.mark.parametrize("kind, h, w, c, tau, cut", CASES)
def test_same_boxes_as_the_numpy_oracle(kind, h, w, c, tau, cut):
    compare_with_oracle(kind, h, w, c, tau, cut)


def test_the_oracle_cases_include_both_eigenvector_signs():
    # The rule "flip when the seed is on the low side" is exercised only by some cases.
    flips = [compare_with_oracle(*case) for case in CASES[:3]]
    assert 0 < sum(flips) < 6 * 3
