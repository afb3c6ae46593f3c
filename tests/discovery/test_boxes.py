"""box_iou by hand, against torchvision, and the exclusive-end convention."""

import pytest
import torch
import torchvision

from dinoreg_dense.discovery import box_iou


def test_iou_by_hand():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 4.0, 2.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]])
    expected = torch.tensor(
        [
            [25 / 175, 1.0, 0.0],
            [0.0, 8 / 100, 0.0],
        ]
    )
    torch.testing.assert_close(box_iou(a, b), expected)


def test_ends_are_exclusive():
    # Boxes that share only an edge do not overlap; a one-pixel box has area 1.
    touching = box_iou(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 2.0, 2.0]]))
    assert touching.item() == 0.0
    inside = box_iou(torch.tensor([[3.0, 3.0, 4.0, 4.0]]), torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert inside.item() == pytest.approx(1 / 100)


def test_matches_torchvision_on_random_boxes():
    xy = torch.rand(50, 2) * 100
    boxes_a = torch.cat([xy, xy + torch.rand(50, 2) * 60 + 1], dim=1)
    xy = torch.rand(7, 2) * 100
    boxes_b = torch.cat([xy, xy + torch.rand(7, 2) * 60 + 1], dim=1)
    torch.testing.assert_close(box_iou(boxes_a, boxes_b), torchvision.ops.box_iou(boxes_a, boxes_b))


def test_degenerate_boxes_give_zero_not_nan():
    empty = torch.tensor([[5.0, 5.0, 5.0, 9.0]])
    assert box_iou(empty, empty).item() == 0.0
    assert box_iou(empty, torch.tensor([[0.0, 0.0, 10.0, 10.0]])).item() == 0.0


def test_integer_and_double_inputs():
    a = torch.tensor([[0, 0, 10, 10]])
    assert box_iou(a, a).dtype == torch.float32
    assert box_iou(a.double(), a).dtype == torch.float64


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="boxes_b"):
        box_iou(torch.zeros(2, 4), torch.zeros(4))
