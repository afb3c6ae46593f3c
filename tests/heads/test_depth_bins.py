"""The linear depth probe's classifier on the patch grid equals DINOv2's order on upsampled maps."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dinoreg_dense.heads.depth_bins import (
    classify_then_upsample,
    classify_then_upsample_is_faster,
    classify_upsampled,
    expected_depth,
)
from dinoreg_dense.registry import MODELS


def make_inputs(with_cls: bool, requires_grad: bool, offset: float = 3.0):
    """Two layers of (2, 6, 3, 5) maps (away from zero mean, as lin.4's unnormalised layers)."""
    maps = [
        (torch.randn(2, 6, 3, 5, dtype=torch.float64) + offset).requires_grad_(requires_grad)
        for _ in range(2)
    ]
    cls = [torch.randn(2, 6, dtype=torch.float64).requires_grad_(requires_grad) for _ in range(2)]
    return maps, cls if with_cls else None


def make_layers(channels: int, use_bn: bool, momentum: float | None):
    bn = nn.BatchNorm2d(channels, momentum=momentum) if use_bn else nn.Identity()
    conv = nn.Conv2d(channels, 8, kernel_size=1)
    with torch.no_grad():
        if use_bn:
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
        conv.bias.normal_()
    return bn.double(), conv.double()


@pytest.mark.parametrize("upsample", [1, 4])
@pytest.mark.parametrize("with_cls", [True, False])
@pytest.mark.parametrize("use_bn", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_classifying_on_the_grid_gives_the_same_logits_gradients_and_running_stats(
    upsample, with_cls, use_bn, training, momentum
):
    maps, cls = make_inputs(with_cls, requires_grad=True)
    bn, conv = make_layers(24 if with_cls else 12, use_bn, momentum)
    results = []
    for classify in (classify_upsampled, classify_then_upsample):
        bn_k, conv_k = copy.deepcopy(bn).train(training), copy.deepcopy(conv)
        logits = classify(maps, cls, bn_k, conv_k, upsample)
        for _ in range(2):  # a second call sees the running averages the first one updated
            logits = classify(maps, cls, bn_k, conv_k, upsample)
        torch.manual_seed(0)
        weights = torch.randn_like(logits)  # a loss that weighs every logit differently
        inputs = maps + (cls or [])
        params = list(bn_k.parameters()) + list(conv_k.parameters())
        grads = torch.autograd.grad((logits * weights).sum(), inputs + params)
        results.append((logits, grads, [b.clone() for b in bn_k.buffers()]))
    (plain, plain_grads, plain_stats), (fast, fast_grads, fast_stats) = results
    assert fast.shape == (2, 8, 3 * upsample, 5 * upsample)
    torch.testing.assert_close(fast, plain, rtol=1e-6, atol=1e-6)
    for got, expected in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    for got, expected in zip(fast_stats, plain_stats, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_expected_depth_is_the_bin_average_under_normalised_scores():
    logits = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    bins = torch.linspace(1e-3, 10.0, 8, dtype=torch.float64)
    scores = F.relu(logits) + 0.1
    probs = scores / scores.sum(dim=1, keepdim=True)
    expected = (probs * bins.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(expected_depth(logits, bins, 0.1), expected, rtol=1e-12, atol=0)


def test_the_head_takes_the_grid_order_on_cpu_only_and_both_orders_train_alike(
    tiny_backbone_cfg,
):
    assert classify_then_upsample_is_faster("cpu")
    assert not classify_then_upsample_is_faster("cuda")  # not measured there
    backbone = MODELS.build(dict(tiny_backbone_cfg, out_indices=(0, 1), norm_outputs=False))
    with torch.no_grad():
        features = backbone.double()(torch.randn(2, 3, 28, 42, dtype=torch.float64))
    depths, grads = [], []
    for order in (False, True, None):
        torch.manual_seed(0)
        head = MODELS.build(
            dict(
                type="LinearDepthHead",
                in_channels=128,
                in_index=(0, 1),
                num_bins=16,
                classify_before_upsample=order,
            )
        ).double()
        depth = head(features)
        depth.sum().backward()
        depths.append(depth)
        grads.append([p.grad for p in head.parameters()])
    assert depths[0].shape == (2, 1, 8, 12)
    for depth, grad in zip(depths[1:], grads[1:], strict=True):
        torch.testing.assert_close(depth, depths[0], rtol=1e-6, atol=1e-6)
        for got, expected in zip(grad, grads[0], strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
