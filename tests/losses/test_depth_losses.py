import math

import numpy as np
import pytest
import torch

from dinoreg_dense.losses import GradientLoss, SigLoss
from dinoreg_dense.registry import MODELS

PRED = [[1.0, 2.0, 4.0], [3.0, 0.5, 6.0]]
GT = [[2.0, 2.0, 0.0], [1.0, 1.0, 3.0]]  # (0, 2) invalid


def numpy_sigloss(pred, gt, lam=0.85, eps=1e-3, max_depth=None):
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    valid = gt > 0
    if max_depth is not None:
        valid &= gt <= max_depth
    g = np.log(pred[valid] + eps) - np.log(gt[valid] + eps)
    return math.sqrt(np.mean(g**2) - lam * np.mean(g) ** 2)


def numpy_gradient_loss(pred, gt, num_scales=4, eps=1e-3):
    """Pixel loops over (B, H, W) arrays, written from the definition in the docstring."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    total = 0.0
    for k in range(num_scales):
        p, t = pred[:, :: 2**k, :: 2**k], gt[:, :: 2**k, :: 2**k]
        batch, height, width = t.shape
        pair_sum, num_valid = 0.0, 0
        for b in range(batch):
            for i in range(height):
                for j in range(width):
                    if t[b, i, j] <= 0:
                        continue
                    num_valid += 1
                    r = math.log(p[b, i, j] + eps) - math.log(t[b, i, j] + eps)
                    for di, dj in ((0, 1), (1, 0)):
                        ni, nj = i + di, j + dj
                        if ni < height and nj < width and t[b, ni, nj] > 0:
                            rn = math.log(p[b, ni, nj] + eps) - math.log(t[b, ni, nj] + eps)
                            pair_sum += abs(rn - r)
        if num_valid:
            total += pair_sum / num_valid
    return total


def random_depths(shape=(2, 7, 9), seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(shape, generator=gen, dtype=dtype) * 5 + 0.1
    gt = torch.rand(shape, generator=gen, dtype=dtype) * 5 + 0.1
    gt[torch.rand(shape, generator=gen) < 0.3] = 0.0
    return pred, gt


def test_sigloss_hand_value_without_eps():
    # g over the valid pixels: [ln 1/2, 0, ln 3, ln 1/2, ln 2] = [-a, 0, b, -a, a].
    a, b = math.log(2), math.log(3)
    expected = math.sqrt((3 * a**2 + b**2) / 5 - 0.85 * ((b - a) / 5) ** 2)
    loss = SigLoss(eps=0.0)(torch.tensor([PRED]), torch.tensor([GT]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_sigloss_matches_numpy_with_eps_and_channel_dim():
    pred = torch.tensor(PRED, dtype=torch.float64)[None, None]  # (1, 1, 2, 3)
    loss = SigLoss(loss_weight=2.0)(pred, torch.tensor([GT], dtype=torch.float64))
    assert loss.item() == pytest.approx(2.0 * numpy_sigloss(PRED, GT), rel=1e-12)


def test_sigloss_is_variance_plus_scaled_mean_square():
    pred, gt = random_depths()
    valid = gt.numpy() > 0
    g = np.log(pred.numpy()[valid] + 1e-3) - np.log(gt.numpy()[valid] + 1e-3)
    as_variance = math.sqrt(np.var(g) + 0.15 * np.mean(g) ** 2)
    as_moments = math.sqrt(np.mean(g**2) - 0.85 * np.mean(g) ** 2)
    assert as_variance == pytest.approx(as_moments, rel=1e-12)
    assert SigLoss()(pred, gt).item() == pytest.approx(as_variance, rel=1e-12)


def test_sigloss_pools_over_the_batch_and_honours_max_depth():
    pred, gt = random_depths()
    expected = numpy_sigloss(pred.numpy(), gt.numpy(), max_depth=3.0)
    assert SigLoss(max_depth=3.0)(pred, gt).item() == pytest.approx(expected, rel=1e-12)
    kept = gt.clone()
    kept[gt <= 1.0] = 0.0
    full = SigLoss()(pred, kept)
    assert SigLoss(min_depth=1.0)(pred, gt).item() == pytest.approx(full.item(), rel=1e-12)


def test_sigloss_with_lambda_one_is_scale_invariant():
    pred, gt = random_depths()
    loss = SigLoss(scale_invariance=1.0, eps=0.0)
    torch.testing.assert_close(loss(7.5 * pred, gt), loss(pred, gt))
    partial = SigLoss(eps=0.0)
    assert partial(7.5 * pred, gt).item() != pytest.approx(partial(pred, gt).item(), rel=1e-3)


def test_sigloss_warm_up_uses_the_scale_term_for_training_calls_only():
    pred, gt = random_depths()
    valid = gt.numpy() > 0
    g = np.log(pred.numpy()[valid] + 1e-3) - np.log(gt.numpy()[valid] + 1e-3)
    warm = math.sqrt(0.15) * abs(np.mean(g))
    full = numpy_sigloss(pred.numpy(), gt.numpy())
    loss = SigLoss(warm_up_iters=2)
    loss.eval()
    assert loss(pred, gt).item() == pytest.approx(full, rel=1e-12)
    loss.train()
    got = [loss(pred, gt).item() for _ in range(3)]
    assert got == pytest.approx([warm, warm, full], rel=1e-12)
    assert loss.state_dict()["warm_up_calls"].item() == 2
    resumed = SigLoss(warm_up_iters=2)
    resumed.load_state_dict(loss.state_dict())
    assert resumed(pred, gt).item() == pytest.approx(full, rel=1e-12)


def test_gradient_loss_hand_value():
    # R = log(pred / gt) = [[0, ln2, 0], [ln2, -, 0]] with (1, 1) invalid. Scale 0: horizontal
    # pairs |ln2| + |ln2|, vertical pairs |ln2| (column 0) + 0 (column 2), over 5 valid pixels.
    # Scale 1 keeps pixels (0, 0) and (0, 2): R equal, adds 0.
    gt = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 0.0, 2.0]]])
    pred = gt * torch.tensor([[[1.0, 2.0, 1.0], [2.0, 9.0, 1.0]]])
    loss = GradientLoss(num_scales=2, eps=0.0)(pred, gt)
    assert loss.item() == pytest.approx(3 * math.log(2) / 5, rel=1e-6)


@pytest.mark.parametrize("num_scales", [1, 4])
def test_gradient_loss_matches_pixel_loops(num_scales):
    pred, gt = random_depths()
    expected = numpy_gradient_loss(pred.numpy(), gt.numpy(), num_scales)
    loss = GradientLoss(num_scales=num_scales, loss_weight=0.5)(pred[:, None], gt)
    assert loss.item() == pytest.approx(0.5 * expected, rel=1e-12)


def test_gradient_loss_is_zero_for_a_scaled_ground_truth():
    _, gt = random_depths()
    assert GradientLoss(eps=0.0)(3.0 * gt + (gt == 0) * 5.0, gt).item() == pytest.approx(0.0)


@pytest.mark.parametrize("loss", [SigLoss(), GradientLoss(num_scales=2)])
def test_gradcheck(loss):
    pred, gt = random_depths(shape=(2, 4, 5), seed=1)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, gt), (pred,))


@pytest.mark.parametrize("loss", [SigLoss(), GradientLoss(eps=0.0)])
def test_invalid_pixels_get_zero_gradient(loss):
    pred, gt = random_depths()
    pred.requires_grad_(True)
    loss(pred, gt).backward()
    assert torch.all(pred.grad[gt == 0] == 0)
    assert torch.all(torch.isfinite(pred.grad))
    assert (pred.grad[gt > 0] != 0).any()


@pytest.mark.parametrize("loss", [SigLoss(), GradientLoss()])
def test_batch_without_valid_pixels_is_a_zero_with_a_graph(loss):
    pred = torch.rand(2, 1, 4, 5, requires_grad=True)
    out = loss(pred, torch.zeros(2, 4, 5))
    assert out.item() == 0.0 and out.requires_grad
    out.backward()
    assert torch.all(pred.grad == 0)


@pytest.mark.parametrize("loss", [SigLoss(), GradientLoss()])
def test_computes_in_float32_under_autocast(loss):
    pred, gt = random_depths(dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(pred.bfloat16(), gt)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, loss(pred.bfloat16().float(), gt))


def test_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="resize the prediction"):
        SigLoss()(torch.rand(1, 1, 4, 4), torch.rand(1, 8, 8))


@pytest.mark.parametrize(
    "cfg",
    [
        dict(type="SigLoss", warm_up_iters=100, max_depth=10.0, loss_name="loss_depth"),
        dict(type="GradientLoss", loss_weight=0.5, loss_name="loss_grad"),
    ],
)
def test_builds_from_config(cfg):
    loss = MODELS.build(cfg)
    assert type(loss).__name__ == cfg["type"]
    assert loss.loss_name == cfg["loss_name"]
    with pytest.raises(ValueError, match="must start with 'loss'"):
        MODELS.build({**cfg, "loss_name": "depth"})
