"""Position-embedding resampling: identity at the native grid, equal to timm's resampling (an
independent implementation) for the antialiased offset-0 rule, exact sizes for the offset rule."""

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from dinoreg_dense.backbones import resample_pos_embed


def table(rows: int, cols: int, dim: int = 8) -> torch.Tensor:
    return torch.randn(1, rows * cols, dim, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("antialias, offset", [(True, 0.0), (False, 0.1), (False, 0.0)])
def test_identity_at_the_native_grid(antialias, offset):
    pos = table(37, 37)
    assert resample_pos_embed(pos, (37, 37), (37, 37), antialias, offset) is pos


@pytest.mark.parametrize("dst", [(17, 23), (16, 16), (60, 45)])
def test_antialiased_rule_equals_timm(dst):
    pos = table(37, 37)
    ours = resample_pos_embed(pos, (37, 37), dst, antialias=True, offset=0.0)
    theirs = resample_abs_pos_embed(pos, new_size=dst, old_size=(37, 37), num_prefix_tokens=0)
    assert ours.shape == (1, dst[0] * dst[1], 8)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_offset_rule_hits_the_exact_size_for_every_grid():
    pos = table(37, 37, dim=2)
    for side in range(1, 80):
        out = resample_pos_embed(pos, (37, 37), (side, side + 3), antialias=False, offset=0.1)
        assert out.shape == (1, side * (side + 3), 2)


def test_rules_differ_off_grid_and_keep_dtype():
    pos = table(37, 37).half()
    with_offset = resample_pos_embed(pos, (37, 37), (17, 23), antialias=False, offset=0.1)
    exact = resample_pos_embed(pos, (37, 37), (17, 23), antialias=False, offset=0.0)
    smooth = resample_pos_embed(pos, (37, 37), (17, 23), antialias=True, offset=0.0)
    assert with_offset.dtype == torch.float16
    assert not torch.equal(with_offset, exact) and not torch.equal(exact, smooth)
