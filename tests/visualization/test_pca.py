import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.visualization import pca_rgb, principal_projections, save_feature_pca


def two_halves(
    channels: int = 16, height: int = 6, width: int = 8, noise: float = 0.0
) -> torch.Tensor:
    """(C, h, w) map whose left half has one feature vector and right half another."""
    generator = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, channels, generator=generator)
    patch_map = torch.empty(channels, height, width)
    patch_map[:, :, : width // 2] = left[:, None, None]
    patch_map[:, :, width // 2 :] = right[:, None, None]
    return patch_map + noise * torch.randn(patch_map.shape, generator=generator)


def test_principal_projections_match_covariance_eigenvectors():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(500, 5, generator=generator) * torch.tensor([10.0, 4.0, 1.0, 0.5, 0.1])
    points = points @ torch.linalg.qr(torch.randn(5, 5, generator=generator))[0]  # rotate

    projections = principal_projections(points, 3)

    centred = points.double().numpy() - points.double().numpy().mean(0)
    _, eigenvectors = np.linalg.eigh(np.cov(centred.T))  # ascending eigenvalues
    reference = centred @ eigenvectors[:, ::-1][:, :3]
    assert projections.shape == (500, 3)
    np.testing.assert_allclose(np.abs(projections.numpy()), np.abs(reference), atol=1e-3)
    # Deterministic signs: each component's largest-magnitude value is positive.
    assert (projections.gather(0, projections.abs().argmax(0, keepdim=True)) > 0).all()
    # Fewer samples than components: the missing ones are zero.
    assert principal_projections(points[:2], 3)[:, 1:].abs().max() < 1e-5


def test_pca_of_two_halves_gives_two_colours():
    colours = pca_rgb(two_halves())
    assert colours.shape == (6, 8, 3) and colours.dtype == torch.float32
    assert colours.min() >= 0 and colours.max() <= 1
    distinct = torch.unique(colours.reshape(-1, 3), dim=0)
    assert len(distinct) == 2
    assert (colours[:, :4] == colours[0, 0]).all() and (colours[:, 4:] == colours[0, 7]).all()
    assert (colours[0, 0] - colours[0, 7]).abs().max() == 1


def test_pca_of_noisy_halves_separates_them():
    colours = pca_rgb(two_halves(noise=0.05))
    left, right = colours[:, :4].reshape(-1, 3), colours[:, 4:].reshape(-1, 3)
    between = torch.cdist(left.mean(0, keepdim=True), right.mean(0, keepdim=True)).item()
    assert between > 0.5
    assert left.std(0).max() < 0.25 and right.std(0).max() < 0.25


def test_foreground_threshold_blacks_out_border_background():
    generator = torch.Generator().manual_seed(1)
    background, object_a, object_b = torch.randn(3, 16, generator=generator) * 3
    patch_map = background[:, None, None].repeat(1, 8, 8)
    patch_map[:, 2:6, 2:4] = object_a[:, None, None]
    patch_map[:, 2:6, 4:6] = object_b[:, None, None]
    patch_map += 0.01 * torch.randn(patch_map.shape, generator=generator)

    colours = pca_rgb(patch_map, foreground_threshold=0.5)

    foreground = torch.zeros(8, 8, dtype=torch.bool)
    foreground[2:6, 2:6] = True
    assert (colours[~foreground] == 0).all()
    assert (colours[foreground].sum(-1) > 0).all()
    # The second PCA, over the object alone, tells its two parts apart.
    assert (colours[2:6, 2:4].mean((0, 1)) - colours[2:6, 4:6].mean((0, 1))).abs().max() > 0.5


def test_pca_rgb_rejects_batched_map():
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        pca_rgb(torch.zeros(1, 4, 2, 2))


def test_save_feature_pca_writes_image_and_upsampled_maps(tmp_path):
    height, width = 30, 40
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    maps = [two_halves(), two_halves(channels=8, height=3, width=4)]
    path = tmp_path / "pca.png"

    save_feature_pca(path, image, maps, titles=["block 10", "block 11"])

    with Image.open(path) as png:
        assert png.format == "PNG"
        picture = np.asarray(png.convert("RGB"))
    assert picture.shape[1] == 3 * width
    top = next(
        row
        for row in range(picture.shape[0] - height + 1)
        if np.array_equal(picture[row : row + height, :width], image)
    )
    for index in (1, 2):
        panel = picture[top : top + height, index * width : (index + 1) * width]
        # Nearest upsampling keeps the two halves as two flat colours split down the middle.
        assert len(np.unique(panel.reshape(-1, 3), axis=0)) == 2
        assert (panel[:, : width // 2] == panel[0, 0]).all()
        assert (panel[:, width // 2 :] == panel[0, -1]).all()


def test_save_feature_pca_needs_one_title_per_map(tmp_path):
    with pytest.raises(ValueError, match="titles"):
        save_feature_pca(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8), [two_halves()], [])
