"""Multi-scale deformable attention: parity with Hugging Face's pure-PyTorch function (forward and
gradients), gradcheck in float64, and the module's shapes, initialisation and one training step."""

import math

import pytest
import torch
from torch import Tensor

from dinoreg_dense.heads.mask2former import MSDeformAttn, multi_scale_deformable_attention

# Three levels, none square, all of different sizes: a wrong split, a transposed map or swapped
# (x, y) cannot go unseen.
SHAPES = [(6, 9), (3, 5), (2, 3)]


def hf_reference():
    """HF's function (Mask2Former modelling file), imported only when a test needs it."""
    modeling = pytest.importorskip("transformers.models.mask2former.modeling_mask2former")
    return modeling.multi_scale_deformable_attention


def random_inputs(
    shapes: list[tuple[int, int]],
    batch: int = 2,
    queries: int = 7,
    heads: int = 2,
    head_dim: int = 4,
    points: int = 3,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(value, spatial_shapes, sampling_locations, attention_weights), the locations reaching a
    little past [0, 1] so that the zero padding is exercised too."""
    generator = torch.Generator().manual_seed(seed)
    levels = len(shapes)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    total = sum(h * w for h, w in shapes)
    value = torch.randn(batch, total, heads, head_dim, generator=generator, dtype=dtype)
    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=generator)
    locations = (locations * 1.2 - 0.1).to(dtype)
    logits = torch.randn(batch, queries, heads, levels * points, generator=generator)
    weights = logits.softmax(-1).view(batch, queries, heads, levels, points).to(dtype)
    return value, spatial_shapes, locations, weights


def test_forward_and_gradients_equal_hugging_face():
    reference = hf_reference()
    value, shapes, locations, weights = random_inputs(SHAPES)
    grads = []
    for function in (multi_scale_deformable_attention, reference):
        leaves = [t.clone().requires_grad_() for t in (value, locations, weights)]
        out = function(leaves[0], shapes, leaves[1], leaves[2])
        # A fixed random cotangent, so every output element's gradient path is checked.
        cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
        out.backward(cotangent)
        grads.append((out.detach(), *(leaf.grad for leaf in leaves)))
    assert grads[0][0].shape == (2, 7, 2 * 4)
    for ours, theirs in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_hand_computed_sample_on_one_level():
    # One 2 x 3 map, one head, one channel, one point at pixel centre (x=2, y=1) -> value[1, 2];
    # halfway between two horizontal neighbours -> their mean.
    grid = torch.arange(6, dtype=torch.float32).view(1, 6, 1, 1)  # rows [0 1 2], [3 4 5]
    shapes = torch.tensor([[2, 3]])
    centre = torch.tensor([(2 + 0.5) / 3, (1 + 0.5) / 2])
    between = torch.tensor([(0.5 + 1.5) / 2 / 3, 0.5 / 2])
    locations = torch.stack([centre, between]).view(1, 2, 1, 1, 1, 2)
    weights = torch.ones(1, 2, 1, 1, 1)
    out = multi_scale_deformable_attention(grid, shapes, locations, weights)
    torch.testing.assert_close(out.flatten(), torch.tensor([5.0, 0.5]))


def test_gradcheck_in_float64():
    value, shapes, locations, weights = random_inputs(
        [(3, 4), (2, 3)], batch=1, queries=2, heads=2, head_dim=2, points=2, dtype=torch.float64
    )
    # Away from pixel centres, where bilinear interpolation has kinks, finite differences hold.
    inputs = [t.requires_grad_() for t in (value, locations, weights)]
    assert torch.autograd.gradcheck(
        lambda v, s, w: multi_scale_deformable_attention(v, shapes, s, w), inputs, eps=1e-6
    )


def test_wrong_value_length_is_an_error():
    value, shapes, locations, weights = random_inputs(SHAPES)
    with pytest.raises(ValueError, match="spatial_shapes"):
        multi_scale_deformable_attention(value[:, 1:], shapes, locations, weights)


def test_module_shapes_and_padding_mask():
    torch.manual_seed(0)
    attention = MSDeformAttn(embed_dim=16, num_heads=4, num_levels=3, num_points=2)
    shapes = torch.tensor(SHAPES)
    total = sum(h * w for h, w in SHAPES)
    query, value = torch.randn(2, 5, 16), torch.randn(2, total, 16)
    reference_points = torch.rand(2, 5, 3, 2)
    out = attention(query, reference_points, value, shapes)
    assert out.shape == (2, 5, 16)
    # Positions that are masked do not change the output, whatever their values.
    mask = torch.zeros(2, total, dtype=torch.bool)
    mask[:, :10] = True
    changed = value.clone()
    changed[:, :10] = 100.0
    torch.testing.assert_close(
        attention(query, reference_points, value, shapes, mask),
        attention(query, reference_points, changed, shapes, mask),
    )


def test_initial_offsets_are_a_circle_of_directions_scaled_by_point_index():
    heads, levels, points = 8, 2, 3
    attention = MSDeformAttn(embed_dim=16, num_heads=heads, num_levels=levels, num_points=points)
    assert not attention.sampling_offsets.weight.any()
    assert not attention.attention_weights.weight.any()
    assert not attention.attention_weights.bias.any()
    bias = attention.sampling_offsets.bias.view(heads, levels, points, 2)
    torch.testing.assert_close(bias[0, 1, 2], torch.tensor([3.0, 0.0]))  # head 0: +x, point 3
    torch.testing.assert_close(bias[2, 0, 0], torch.tensor([0.0, 1.0]))  # head 2: +y (90 deg)
    torch.testing.assert_close(bias[1, 0, 1], torch.tensor([2.0, 2.0]))  # 45 deg, max coord 1
    assert bias[4, 0, 0, 0].item() == pytest.approx(-1.0)  # 180 deg
    angles = torch.atan2(bias[:, 0, 0, 1], bias[:, 0, 0, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles, torch.arange(heads) * (2 * math.pi / heads))


def test_module_offsets_are_in_cells_of_each_level():
    # With zero offset weights and a zero bias, every point samples the reference point itself:
    # the output equals the projected value there. Then an offset of one cell in x on a level
    # must move the sample by exactly one cell of that level.
    attention = MSDeformAttn(embed_dim=4, num_heads=1, num_levels=2, num_points=1)
    shapes = torch.tensor([[2, 4], [3, 2]])
    value = torch.randn(1, 8 + 6, 4)
    query = torch.zeros(1, 1, 4)
    with torch.no_grad():
        attention.sampling_offsets.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]))
    # Centre of cell (x=0, y=0) on level 0 and of cell (x=1, y=0) on level 1.
    reference_points = torch.tensor([[[[0.5 / 4, 0.5 / 2], [1.5 / 2, 0.5 / 3]]]])
    out = attention(query, reference_points, value, shapes)
    projected = attention.value_proj(value)
    # Level 0 moves one cell right to (x=1, y=0); level 1 one cell down to (x=1, y=1).
    expected = 0.5 * projected[0, 1] + 0.5 * projected[0, 8 + 1 * 2 + 1]
    torch.testing.assert_close(out[0, 0], attention.output_proj(expected))


def test_one_training_step_lowers_the_loss_and_reaches_every_parameter():
    torch.manual_seed(0)
    attention = MSDeformAttn(embed_dim=16, num_heads=4, num_levels=3, num_points=2)
    shapes = torch.tensor(SHAPES)
    value = torch.randn(2, sum(h * w for h, w in SHAPES), 16)
    query, reference_points = torch.randn(2, 5, 16), torch.rand(2, 5, 3, 2)
    target = torch.randn(2, 5, 16)
    optimizer = torch.optim.SGD(attention.parameters(), lr=0.1)

    def loss() -> Tensor:
        return (attention(query, reference_points, value, shapes) - target).pow(2).mean()

    before = loss()
    before.backward()
    # The zero-initialised offset and attention matrices must still receive gradients.
    for name, parameter in attention.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    optimizer.step()
    assert loss().item() < before.item()
