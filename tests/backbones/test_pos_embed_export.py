"""The export-safe bicubic resampling equals PyTorch's F.interpolate, antialiased or not, up and
down, to a size or by DINOv2's offset scale factor; resample_pos_embed switches to it only while
exporting and gives the eager table."""

import pytest
import torch
import torch.nn.functional as F

from dinoreg_dense.backbones import pos_embed
from dinoreg_dense.backbones.pos_embed import resample_pos_embed
from dinoreg_dense.backbones.pos_embed_export import (
    antialiased_bicubic_weights,
    plain_bicubic_weights,
    separable_bicubic,
)

# Relative to the largest value: float32 rounding of a different summation order (measured
# worst 4e-6, docs/export.md); a wrong kernel constant or border rule is off by 1e-2 or more.
TOLERANCE = 2e-5

SIZES = [
    ((37, 37), (16, 16)),  # down, DINOv2's 518 table to a 224 image
    ((16, 16), (37, 37)),  # up
    ((37, 37), (40, 23)),  # up one axis, down the other
    ((14, 9), (3, 5)),  # far down, non-square source
    ((4, 4), (4, 4)),  # unchanged
]


def _reference(grid: torch.Tensor, dst: tuple[int, int], antialias: bool, offset: float):
    if offset:
        src = grid.shape[-2:]
        scale = ((dst[0] + offset) / src[0], (dst[1] + offset) / src[1])
        return F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=antialias)
    return F.interpolate(grid, size=dst, mode="bicubic", antialias=antialias)


@pytest.mark.parametrize("antialias", [True, False], ids=["antialias", "plain"])
@pytest.mark.parametrize("offset", [0.0, 0.1], ids=["size", "offset"])
@pytest.mark.parametrize(("src", "dst"), SIZES, ids=[f"{s}->{d}" for s, d in SIZES])
def test_separable_bicubic_equals_interpolate(src, dst, antialias, offset) -> None:
    grid = torch.randn(1, 8, *src)
    expected = _reference(grid, dst, antialias, offset)
    out = separable_bicubic(grid, dst, antialias, offset)
    assert out.shape == expected.shape
    assert (out - expected).abs().max() <= TOLERANCE * expected.abs().max()


def test_weight_rows_sum_to_one() -> None:
    """Both kernels interpolate: a constant grid stays constant."""
    for make in (plain_bicubic_weights, antialiased_bicubic_weights):
        for dst in (3, 16, 50):
            torch.testing.assert_close(make(16, dst).sum(1), torch.ones(dst))


@pytest.mark.parametrize(
    ("antialias", "offset"),
    [(True, 0.0), (False, 0.1), (False, 0.0)],
    ids=["reg", "dinov2", "plain"],
)
@pytest.mark.parametrize("dst", [(4, 4), (7, 3), (2, 2)])
def test_resample_pos_embed_while_exporting_gives_the_eager_table(
    monkeypatch, antialias, offset, dst
) -> None:
    table = torch.randn(1, 16, 8)
    eager = resample_pos_embed(table, (4, 4), dst, antialias, offset)
    monkeypatch.setattr(pos_embed, "is_exporting", lambda: True)
    exported = resample_pos_embed(table, (4, 4), dst, antialias, offset)
    torch.testing.assert_close(exported, eager, rtol=0, atol=TOLERANCE * eager.abs().max())
