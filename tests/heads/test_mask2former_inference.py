"""Mask2Former's inference functions against hand-computed values on tiny crafted outputs."""

import torch

from dinoreg_dense.heads.mask2former import (
    instance_inference,
    mask_scores,
    masks_to_boxes,
    semantic_inference,
    top_query_classes,
)


def test_semantic_inference_is_the_sum_over_queries_of_class_times_mask_probability():
    class_logits = torch.randn(2, 3, 5)  # B, Q, K + 1
    mask_logits = torch.randn(2, 3, 4, 6)
    scores = semantic_inference(class_logits, mask_logits)
    assert scores.shape == (2, 4, 4, 6)
    for b in range(2):
        for k in range(4):
            expected = sum(
                class_logits[b, q].softmax(-1)[k] * mask_logits[b, q].sigmoid() for q in range(3)
            )
            torch.testing.assert_close(scores[b, k], expected)


def test_top_query_classes_ranks_every_query_class_pair_and_drops_no_object():
    probs = torch.tensor(
        [
            [0.50, 0.05, 0.05, 0.40],  # query 0: class 0, then "no object"
            [0.10, 0.30, 0.25, 0.35],  # query 1: two classes above query 0's class 1
            [0.02, 0.02, 0.01, 0.95],  # query 2: "no object"
        ]
    )
    scores, labels, queries = top_query_classes(probs.log(), top_k=4)
    torch.testing.assert_close(scores, torch.tensor([0.50, 0.30, 0.25, 0.10]))
    assert labels.tolist() == [0, 1, 2, 0]
    assert queries.tolist() == [0, 1, 1, 1]
    # k is at most Q x K
    assert len(top_query_classes(probs.log(), top_k=100)[0]) == 9


def test_mask_scores_average_the_probability_inside_the_mask():
    logits = torch.tensor([[[2.0, -1.0], [0.5, -3.0]], [[-1.0, -2.0], [-1.0, -1.0]]])
    masks = logits > 0
    expected_first = (torch.sigmoid(torch.tensor(2.0)) + torch.sigmoid(torch.tensor(0.5))) / 2
    scores = mask_scores(logits, masks)
    torch.testing.assert_close(scores[0], expected_first, atol=1e-6, rtol=1e-5)
    assert scores[1] == 0  # empty mask


def test_masks_to_boxes_are_tight_and_end_exclusive():
    masks = torch.zeros(3, 5, 7, dtype=torch.bool)
    masks[0, 1:3, 2:6] = True
    masks[1, 4, 0] = True
    masks[1, 0, 6] = True  # two pieces: the box spans both
    boxes = masks_to_boxes(masks)
    expected = [[2, 1, 6, 3], [0, 0, 7, 5], [0, 0, 0, 0]]
    assert boxes.dtype == torch.float32 and boxes.tolist() == expected
    assert masks_to_boxes(torch.zeros(0, 5, 7, dtype=torch.bool)).shape == (0, 4)


def test_instance_inference_scores_are_class_times_mask_score():
    mask_logits = torch.full((2, 4, 4), -4.0)
    mask_logits[0, :2, :2] = 3.0
    mask_logits[1, 1:, 1:] = 1.0
    result = instance_inference(torch.tensor([0.9, 0.6]), torch.tensor([2, 0]), mask_logits)
    assert result["labels"].tolist() == [2, 0]
    assert result["masks"].sum((1, 2)).tolist() == [4, 9]
    sig = torch.sigmoid
    expected = torch.stack([0.9 * sig(torch.tensor(3.0)), 0.6 * sig(torch.tensor(1.0))])
    torch.testing.assert_close(result["scores"], expected, atol=1e-6, rtol=1e-5)
    assert result["bboxes"].tolist() == [[0, 0, 2, 2], [1, 1, 4, 4]]
