import pytest
import torch
import torch.nn.functional as F

from dinoreg_dense.losses import (
    CrossEntropyLoss,
    fused_path_is_faster,
    interpolated_cross_entropy,
    linear_interp_matrix,
    upsampled_cross_entropy,
)


def reference(logits, labels, size, ignore_index=255):
    height, width = labels.shape[-2:]
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return F.cross_entropy(up[..., :height, :width], labels, ignore_index=ignore_index)


def test_interp_matrix_matches_f_interpolate():
    x = torch.randn(2, 3, 7)
    expected = F.interpolate(x, size=19, mode="linear", align_corners=False)
    torch.testing.assert_close(x @ linear_interp_matrix(7, 19).T, expected)


@pytest.mark.parametrize(
    ("grid", "size", "labels_size", "rows"),
    [
        ((7, 9), (98, 126), (90, 120), 5),
        ((4, 4), (64, 64), (64, 64), None),
        ((3, 5), (3, 5), (3, 5), 1),
        ((9, 11), (6, 8), (5, 8), None),  # fewer rows than the grid: runs of one row
        ((1, 4), (10, 12), (10, 12), 3),  # a single source row
    ],
)
def test_upsampled_ce_equals_interpolate_then_ce(grid, size, labels_size, rows):
    logits = torch.randn(2, 6, *grid, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 6, (2, *labels_size))
    labels[0, :3] = 255
    labels[1, :, -2:] = 255
    expected = reference(logits, labels, size)
    (grad_expected,) = torch.autograd.grad(expected, logits)
    got = upsampled_cross_entropy(logits, labels, size, rows_per_chunk=rows)
    (grad_got,) = torch.autograd.grad(2.0 * got, logits)  # upstream gradient is honoured
    torch.testing.assert_close(got, expected.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_got, 2.0 * grad_expected, rtol=1e-6, atol=1e-9)
    plain = interpolated_cross_entropy(logits, labels, size)
    (grad_plain,) = torch.autograd.grad(plain, logits)
    torch.testing.assert_close(plain, expected)
    torch.testing.assert_close(grad_plain, grad_expected, rtol=1e-6, atol=1e-9)


def test_confident_wrong_logits_give_the_exact_loss():
    # the target's softmax probability underflows to 0 in float32: the loss must stay finite
    logits = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    logits[:, 0] = 300.0
    logits.requires_grad_(True)
    labels = torch.ones(1, 8, 8, dtype=torch.long)
    labels[0, 0, 0] = 0
    expected = reference(logits, labels, (8, 8))
    (grad_expected,) = torch.autograd.grad(expected, logits)
    got = upsampled_cross_entropy(logits, labels)
    (grad_got,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(got, expected.float())
    torch.testing.assert_close(grad_got, grad_expected, rtol=1e-6, atol=1e-9)


def test_all_ignored_gives_zero_loss_and_gradient():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    labels = torch.full((1, 16, 16), 255)
    loss = CrossEntropyLoss()(logits, labels)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.abs().sum() == 0


def test_loss_module_picks_the_right_path_and_weight():
    logits = torch.randn(2, 4, 5, 5)
    labels = torch.randint(0, 4, (2, 5, 5))
    loss = CrossEntropyLoss(loss_weight=0.5)
    torch.testing.assert_close(loss(logits, labels), 0.5 * F.cross_entropy(logits, labels))
    big = torch.randint(0, 4, (2, 35, 35))
    torch.testing.assert_close(loss(logits, big), 0.5 * reference(logits, big, (35, 35)))
    with pytest.raises(ValueError, match="smaller than the labels"):
        upsampled_cross_entropy(logits, big, (20, 20))
    with pytest.raises(ValueError, match="must start with 'loss'"):
        CrossEntropyLoss(loss_name="ce")


@pytest.mark.parametrize(
    ("classes", "grid_rows", "size", "device", "fused"),
    [
        (4, 16, (128, 128), "cpu", False),  # the toy demo: batch 8, 128x128, patch 8
        (8, 37, (518, 518), "cpu", False),  # few classes
        (21, 16, (128, 128), "cpu", False),  # small images
        (21, 37, (518, 518), "cpu", True),  # VOC at 518
        (150, 37, (518, 518), "cpu", True),  # ADE20K at 518
        (150, 37, (518, 518), "cuda", False),  # never measured on a GPU
        (150, 32, (64, 64), "cpu", False),  # 2x upsampling: bands of two rows
    ],
)
def test_fused_path_only_where_it_was_measured_faster(classes, grid_rows, size, device, fused):
    assert fused_path_is_faster(classes, grid_rows, size, device) is fused


def test_loss_module_calls_the_path_chosen_by_cost(monkeypatch):
    import dinoreg_dense.losses.cross_entropy as module

    calls = []
    for name in ("upsampled_cross_entropy", "interpolated_cross_entropy"):
        path = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *args, _path=path, _name=name: calls.append(_name) or _path(*args)
        )
    loss = CrossEntropyLoss()
    for classes, expected in ((4, "interpolated_cross_entropy"), (150, "upsampled_cross_entropy")):
        logits = torch.randn(2, classes, 4, 4)
        labels = torch.randint(0, classes, (2, 60, 60))
        torch.testing.assert_close(
            loss(logits, labels, (64, 64)), reference(logits, labels, (64, 64))
        )
        assert calls.pop() == expected
