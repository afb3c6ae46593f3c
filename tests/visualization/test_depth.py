import numpy as np
import torch
from PIL import Image

from dinoreg_dense.visualization import colorize_depth, save_depth_comparison
from dinoreg_dense.visualization.depth import NO_DEPTH_RGB


def test_near_is_bright_far_is_dark_and_missing_is_grey():
    depth = torch.tensor([[1.0, 5.0, 10.0, 0.0]])
    rgb = colorize_depth(depth, min_depth=1.0, max_depth=10.0)
    brightness = rgb[0].astype(int).sum(axis=1)
    assert brightness[0] > brightness[1] > brightness[2]
    assert tuple(rgb[0, 3]) == NO_DEPTH_RGB
    assert tuple(colorize_depth(np.array([[50.0]]), 1.0, 10.0)[0, 0]) == tuple(rgb[0, 2])  # clipped


def test_depth_comparison_shows_three_panels_with_a_key(tmp_path):
    image = np.zeros((20, 30, 3), np.uint8)
    depth = np.linspace(1, 10, 600).reshape(20, 30)
    path = tmp_path / "sub" / "cmp.png"
    save_depth_comparison(path, image, depth, 1.0, 10.0, gt=depth)
    with Image.open(path) as picture:
        assert picture.size[0] == 3 * 30 and picture.size[1] > 20  # titles and key band
