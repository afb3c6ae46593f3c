import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dinoreg_dense.losses import (
    HungarianMatcher,
    mask_uncertainty,
    matching_cost,
    min_cost_assignment,
    pairwise_dice_cost,
    pairwise_sigmoid_bce_cost,
    point_sample,
    sample_uncertain_points,
)
from dinoreg_dense.registry import MODELS

hf = pytest.importorskip("transformers.models.mask2former.modeling_mask2former")


def brute_force_cost(cost):
    """Lowest total cost over every injective map of the smaller side into the larger."""
    num_queries, num_targets = cost.shape
    if num_targets == 0:
        return 0.0
    if num_targets <= num_queries:
        return min(
            sum(cost[q, n] for n, q in enumerate(queries))
            for queries in itertools.permutations(range(num_queries), num_targets)
        )
    return brute_force_cost(cost.T)


@pytest.mark.parametrize(
    ("num_queries", "num_targets"),
    [(6, 4), (5, 3), (4, 4), (3, 3), (6, 1), (1, 1), (5, 0), (2, 4)],
)
@pytest.mark.parametrize("seed", range(5))
def test_assignment_is_optimal_against_brute_force(num_queries, num_targets, seed):
    cost = torch.randn(num_queries, num_targets, generator=torch.Generator().manual_seed(seed))
    query_idx, target_idx = min_cost_assignment(cost)
    assert query_idx.dtype == target_idx.dtype == torch.int64
    assert len(query_idx) == len(target_idx) == min(num_queries, num_targets)
    assert len(set(query_idx.tolist())) == len(query_idx)
    assert len(set(target_idx.tolist())) == len(target_idx)
    total = cost[query_idx, target_idx].sum().item()
    assert total == pytest.approx(brute_force_cost(cost.numpy()), abs=1e-5)


def test_assignment_on_hand_made_matrix():
    # Greedy (row by row) takes (0, 0) and then (1, 1) for 1 + 100; optimal is 2 + 3.
    cost = torch.tensor([[1.0, 2.0], [3.0, 100.0], [50.0, 60.0]])
    query_idx, target_idx = min_cost_assignment(cost)
    assert query_idx.tolist() == [0, 1]
    assert target_idx.tolist() == [1, 0]


def test_assignment_matches_broken_entries_last():
    cost = torch.tensor([[float("nan"), 1.0], [2.0, float("inf")], [3.0, 4.0]])
    query_idx, target_idx = min_cost_assignment(cost)
    assert sorted(zip(query_idx.tolist(), target_idx.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_point_sample_at_pixel_centres_reads_the_pixels():
    masks = torch.randn(2, 3, 5, 7)
    rows, cols = torch.meshgrid(torch.arange(5), torch.arange(7), indexing="ij")
    coords = torch.stack([(cols + 0.5) / 7, (rows + 0.5) / 5], -1).reshape(1, -1, 2)
    sampled = point_sample(masks, coords.expand(2, -1, -1))
    torch.testing.assert_close(sampled, masks.flatten(2))


def test_point_sample_equals_bilinear_upsampling_at_upsampled_pixel_centres():
    masks = torch.randn(2, 3, 5, 7)
    height, width = 15, 21
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    coords = torch.stack([(cols + 0.5) / width, (rows + 0.5) / height], -1).reshape(1, -1, 2)
    sampled = point_sample(masks, coords.expand(2, -1, -1)).reshape(2, 3, height, width)
    expected = F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)
    # Inside the hull of the source pixel centres (rows/cols 1..-2 at scale 3) the two agree;
    # outside, interpolate replicates the border and grid_sample (zero padding, as detectron2)
    # fades to 0.
    torch.testing.assert_close(sampled[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])
    assert not torch.allclose(sampled[..., 0, 0], expected[..., 0, 0])


def test_point_sample_of_bool_masks():
    masks = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    masks[..., :2, :] = True
    coords = torch.tensor([[[0.5, 0.125], [0.5, 0.875], [0.5, 0.5]]])
    assert point_sample(masks, coords).tolist() == [[[1.0, 0.0, 0.5]]]


def test_importance_sampling_keeps_the_most_uncertain_candidates():
    # Logits are 0 on one column and large elsewhere: the uncertain points hug that column.
    logits = torch.full((2, 1, 32, 32), 10.0)
    logits[..., 20] = 0.0
    num_points, ratio = 40, 0.75
    coords = sample_uncertain_points(
        logits, num_points, 3.0, ratio, generator=torch.Generator().manual_seed(0)
    )
    assert coords.shape == (2, num_points, 2)
    # Replay the generator: the uncertain points are the top-30 of the 120 candidates.
    generator = torch.Generator().manual_seed(0)
    candidates = torch.rand(2, 120, 2, generator=generator)
    uncertainty = mask_uncertainty(point_sample(logits, candidates))[:, 0]
    kept = mask_uncertainty(point_sample(logits, coords[:, :30]))[:, 0]
    top = uncertainty.topk(30, dim=1).values
    torch.testing.assert_close(kept.sort(dim=1).values, top.sort(dim=1).values)
    assert (kept.min(dim=1).values >= uncertainty.median(dim=1).values).all()
    # The remaining 10 are the next uniform draw of the same generator.
    torch.testing.assert_close(coords[:, 30:], torch.rand(2, 10, 2, generator=generator))


def test_importance_sampling_equals_hf_with_the_same_random_numbers():
    logits = torch.randn(3, 1, 9, 11)
    torch.manual_seed(5)
    expected = hf.Mask2FormerLoss.sample_points_using_uncertainty(
        None, logits, mask_uncertainty, 20, 3.0, 0.75
    )
    coords = sample_uncertain_points(logits, 20, 3.0, 0.75, torch.Generator().manual_seed(5))
    torch.testing.assert_close(coords, expected)


def loop_costs(point_logits, point_labels):
    """BCE and dice costs written pair by pair from their definitions."""
    bce = point_logits.new_empty(len(point_logits), len(point_labels))
    dice = torch.empty_like(bce)
    for q, x in enumerate(point_logits):
        p = torch.sigmoid(x)
        for n, y in enumerate(point_labels):
            bce[q, n] = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
            dice[q, n] = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
    return bce, dice


def test_pairwise_costs_equal_the_definitions():
    logits = torch.randn(4, 30, dtype=torch.float64)
    labels = (torch.rand(3, 30, dtype=torch.float64) > 0.5).double()
    bce, dice = loop_costs(logits, labels)
    torch.testing.assert_close(pairwise_sigmoid_bce_cost(logits, labels), bce)
    torch.testing.assert_close(pairwise_dice_cost(logits, labels), dice)


def test_matching_cost_is_the_weighted_sum():
    generator = torch.Generator().manual_seed(1)
    class_logits = torch.randn(5, 4, generator=generator)
    mask_logits = torch.randn(5, 6, 6, generator=generator)
    labels = torch.tensor([2, 0])
    masks = torch.rand(2, 12, 12, generator=generator) > 0.5
    coords = torch.rand(50, 2, generator=generator)
    cost = matching_cost(class_logits, mask_logits, labels, masks, coords, 2.0, 5.0, 3.0)
    bce, dice = loop_costs(
        point_sample(mask_logits[None], coords[None])[0],
        point_sample(masks[None].float(), coords[None])[0],
    )
    probs = class_logits.softmax(-1)
    torch.testing.assert_close(cost, -2.0 * probs[:, labels] + 5.0 * bce + 3.0 * dice)


def test_class_cost_prefers_the_confident_query():
    # Query 1 is sure of class 0, query 0 of class 1: only the class term decides.
    class_logits = torch.tensor([[[-5.0, 5.0, 0.0], [5.0, -5.0, 0.0], [0.0, 0.0, 5.0]]])
    masks = torch.zeros(1, 3, 4, 4)
    targets = [{"labels": torch.tensor([0, 1]), "masks": torch.zeros(2, 8, 8, dtype=torch.bool)}]
    matcher = HungarianMatcher(cost_class=1.0, cost_mask=0.0, cost_dice=0.0, num_points=16)
    ((query_idx, target_idx),) = matcher(class_logits, masks, targets)
    assert dict(zip(target_idx.tolist(), query_idx.tolist(), strict=True)) == {0: 1, 1: 0}


def test_mask_costs_prefer_the_overlapping_query():
    # Two targets: left half and right half. Query 2 predicts left, query 0 right.
    target_masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    target_masks[0, :, :8] = True
    target_masks[1, :, 8:] = True
    pred_masks = torch.full((1, 3, 8, 8), -8.0)
    pred_masks[0, 2, :, :4] = 8.0
    pred_masks[0, 0, :, 4:] = 8.0
    targets = [{"labels": torch.tensor([1, 1]), "masks": target_masks}]
    for weights in [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]:
        matcher = HungarianMatcher(*weights, num_points=64)
        ((query_idx, target_idx),) = matcher(torch.zeros(1, 3, 3), pred_masks, targets)
        assert dict(zip(target_idx.tolist(), query_idx.tolist(), strict=True)) == {0: 2, 1: 0}


def test_matcher_handles_images_without_targets_and_n_equal_q():
    generator = torch.Generator().manual_seed(0)
    pred_logits = torch.randn(3, 4, 6, generator=generator)
    pred_masks = torch.randn(3, 4, 8, 8, generator=generator)
    targets = [
        {"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 16, 16).bool()},
        {"labels": torch.tensor([0, 1, 2, 3]), "masks": torch.rand(4, 16, 16) > 0.5},
        {"labels": torch.tensor([4]), "masks": torch.rand(1, 16, 16) > 0.5},
    ]
    indices = HungarianMatcher(num_points=32)(pred_logits, pred_masks, targets, generator)
    assert [len(q) for q, _ in indices] == [0, 4, 1]
    assert sorted(indices[1][0].tolist()) == sorted(indices[1][1].tolist()) == [0, 1, 2, 3]
    assert all(q.dtype == t.dtype == torch.int64 for q, t in indices)


def test_matcher_equals_hf_with_the_same_points():
    generator = torch.Generator().manual_seed(0)
    batch, num_queries, num_classes = 2, 6, 5
    pred_logits = torch.randn(batch, num_queries, num_classes + 1, generator=generator)
    pred_masks = torch.randn(batch, num_queries, 10, 10, generator=generator)
    labels = [torch.tensor([1, 4, 0]), torch.tensor([2, 2])]
    masks = [torch.rand(len(x), 20, 20, generator=generator) > 0.5 for x in labels]
    targets = [{"labels": x, "masks": m} for x, m in zip(labels, masks, strict=True)]
    matcher = HungarianMatcher(2.0, 5.0, 5.0, num_points=64)
    ours = matcher(pred_logits, pred_masks, targets, torch.Generator().manual_seed(7))
    torch.manual_seed(7)
    reference = hf.Mask2FormerHungarianMatcher(2.0, 5.0, 5.0, num_points=64)(
        pred_masks, pred_logits, [m.float() for m in masks], labels
    )
    for (q, t), (q_ref, t_ref) in zip(ours, reference, strict=True):
        assert q.tolist() == q_ref.tolist()
        assert t.tolist() == t_ref.tolist()


def test_matcher_builds_from_config():
    matcher = MODELS.build(dict(type="HungarianMatcher", cost_class=1.0, num_points=8))
    assert isinstance(matcher, HungarianMatcher)
    assert (matcher.cost_class, matcher.cost_mask, matcher.num_points) == (1.0, 5.0, 8)
    with pytest.raises(ValueError, match="non-zero"):
        HungarianMatcher(0.0, 0.0, 0.0)


def test_brute_force_helper_on_a_known_case():
    assert brute_force_cost(np.array([[1.0, 2.0], [3.0, 100.0]])) == 5.0
