"""Instance pictures: masks blended in the class colour, boxes outlined, low scores left out."""

import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.visualization import draw_instances, save_instances
from dinoreg_dense.visualization.instances import default_palette

PALETTE = [[255, 0, 0], [0, 0, 255]]


def two_instances(height: int = 40, width: int = 60):
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, 10:30, 5:25] = True
    masks[1, 2:8, 40:55] = True
    bboxes = torch.tensor([[5.0, 10, 25, 30], [40, 2, 55, 8]])
    return masks, bboxes, torch.tensor([1, 0]), torch.tensor([0.9, 0.1])


def test_masks_and_boxes_are_drawn_where_they_are_and_low_scores_are_not():
    image = np.full((40, 60, 3), 100, np.uint8)
    masks, bboxes, labels, scores = two_instances()
    picture = draw_instances(
        image, masks, bboxes, labels, scores, palette=PALETTE, score_threshold=0.3, alpha=0.5
    )
    assert picture.shape == image.shape and picture.dtype == np.uint8
    assert picture[20, 15].tolist() == [50, 50, 178]  # half grey, half blue (class 1)
    assert picture[29, 15].tolist() == [0, 0, 255]  # the box's bottom row (y1 - 1 = 29)
    assert picture[35, 15].tolist() == [100, 100, 100]  # outside
    assert (picture[:9, 40:] == 100).all()  # the 0.1 instance is not drawn
    image_unchanged = np.full((40, 60, 3), 100, np.uint8)
    assert np.array_equal(image, image_unchanged)  # drawn on a copy


def test_saved_picture_is_image_next_to_instances(tmp_path):
    image = np.full((40, 60, 3), 100, np.uint8)
    save_instances(tmp_path / "a.png", image, *two_instances(), class_names=("disc", "square"))
    width, height = Image.open(tmp_path / "a.png").size
    assert width == 120 and height > 40


def test_default_palette_has_distinct_colours():
    colours = default_palette(20)
    assert colours.shape == (20, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours.tolist()}) == 20


def test_mismatched_image_is_refused():
    masks, bboxes, labels, scores = two_instances()
    with pytest.raises(ValueError, match="image must be"):
        draw_instances(
            np.zeros((41, 60, 3), np.uint8), masks, bboxes, labels, scores, palette=PALETTE
        )
