"""Depth as 16-bit millimetre PNGs: rounding, no-prediction pixels, the 65.535 m limit."""

import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.engine import depth_to_millimetres, save_prediction
from dinoreg_dense.structures import DenseDataSample


def test_depth_becomes_rounded_millimetres_with_0_for_none_and_saturates_past_65_535_m():
    metres = np.array([[0.0, 0.0004, 0.0006, 1.2346, 9.9996], [65.535, 70.0, np.nan, np.inf, -1]])
    expected = np.array([[0, 0, 1, 1235, 10000], [65535, 65535, 0, 0, 0]], np.uint16)
    millimetres = depth_to_millimetres(metres)
    assert millimetres.dtype == np.uint16
    np.testing.assert_array_equal(millimetres, expected)


def test_the_depth_png_reads_back_as_the_same_millimetres(tmp_path):
    depth = torch.linspace(0.5, 12.0, 6 * 5).reshape(6, 5)
    sample = DenseDataSample(pred_depth_map=depth)
    save_prediction(sample, tmp_path / "d.png", None)
    with Image.open(tmp_path / "d.png") as png:
        assert png.size == (5, 6)
        read = np.asarray(png)
    np.testing.assert_array_equal(read, np.round(depth.double().numpy() * 1000))


def test_a_depth_picture_needs_the_colour_range(tmp_path):
    sample = DenseDataSample(pred_depth_map=torch.ones(4, 4))
    image = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="range"):
        save_prediction(sample, None, tmp_path / "p.png", image)
