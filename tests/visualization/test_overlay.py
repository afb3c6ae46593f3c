import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.visualization import (
    colorize_labels,
    overlay,
    overlay_segmentation,
    save_comparison,
)
from dinoreg_dense.visualization._figure import TITLE_HEIGHT_PX, render_panels
from dinoreg_dense.visualization.legend import MIN_LEGEND_HEIGHT_PX, fit_legend, legend_height

PALETTE = [(200, 0, 0), (0, 180, 0), (0, 0, 160), (250, 250, 0)]
LABELS = np.array([[0, 1, 255], [2, 2, 0]])


def find_panel(picture: np.ndarray, panel: np.ndarray, column: int) -> bool:
    """Whether ``panel`` appears pixel for pixel at some row offset, starting at ``column``."""
    height, width = panel.shape[:2]
    return any(
        np.array_equal(picture[top : top + height, column : column + width], panel)
        for top in range(picture.shape[0] - height + 1)
    )


def test_colorize_labels_uses_palette_and_paints_ignore_black():
    colours = colorize_labels(torch.from_numpy(LABELS), PALETTE)
    assert colours.shape == (2, 3, 3) and colours.dtype == np.uint8
    assert colours[0, 0].tolist() == [200, 0, 0]
    assert colours[0, 1].tolist() == [0, 180, 0]
    assert colours[1, 0].tolist() == colours[1, 1].tolist() == [0, 0, 160]
    assert colours[0, 2].tolist() == [0, 0, 0]


def test_colorize_labels_rejects_class_without_colour_and_missing_palette():
    with pytest.raises(ValueError, match="palette has 4 colours"):
        colorize_labels(np.array([[0, 4]]), PALETTE)
    with pytest.raises(ValueError, match="palette"):
        colorize_labels(LABELS, None)


def test_overlay_blends_labelled_pixels_and_keeps_ignored_ones():
    image = np.full((2, 3, 3), 100, np.uint8)
    blended = overlay_segmentation(image, LABELS, PALETTE, alpha=0.5)
    assert blended.dtype == np.uint8 and blended.shape == image.shape
    assert blended[0, 0].tolist() == [150, 50, 50]  # (100 + 200) / 2, (100 + 0) / 2 ...
    assert blended[1, 1].tolist() == [50, 50, 130]
    assert blended[0, 2].tolist() == [100, 100, 100]  # ignored: the image shows through
    assert np.array_equal(overlay_segmentation(image, LABELS, PALETTE, alpha=0.0), image)


def test_overlay_rejects_image_of_other_size():
    with pytest.raises(ValueError, match="image must be"):
        overlay_segmentation(np.zeros((3, 3, 3), np.uint8), LABELS, PALETTE)


def test_save_comparison_writes_three_native_panels_and_legend(tmp_path):
    rng = np.random.default_rng(0)
    height, width = 40, 90
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    pred = np.zeros((height, width), np.int64)
    pred[:, 45:] = 1
    gt = np.full((height, width), 255, np.int64)
    gt[:20] = 2
    path = tmp_path / "nested" / "comparison.png"

    save_comparison(
        path, image, torch.from_numpy(pred), gt, palette=PALETTE, class_names=list("abcd")
    )

    with Image.open(path) as png:
        assert png.format == "PNG"
        picture = np.asarray(png.convert("RGB"))
    assert picture.shape[1] == 3 * width
    assert picture.shape[0] > height
    assert find_panel(picture, image, 0)
    assert find_panel(picture, overlay_segmentation(image, pred, PALETTE), width)
    assert find_panel(picture, overlay_segmentation(image, gt, PALETTE), 2 * width)
    # The legend sits below the panels: present classes 0, 1, 2 appear as patches, 3 does not.
    panels_end = next(
        top + height
        for top in range(picture.shape[0] - height + 1)
        if np.array_equal(picture[top : top + height, :width], image)
    )
    legend = picture[panels_end:]
    for colour in PALETTE[:3]:
        assert (legend == colour).all(axis=-1).any(), colour
    assert not (legend == PALETTE[3]).all(axis=-1).any()


def test_save_comparison_without_ground_truth_has_two_panels(tmp_path):
    image = np.zeros((16, 24, 3), np.uint8)
    path = tmp_path / "pred_only.png"
    save_comparison(path, image, np.ones((16, 24), np.int64), palette=PALETTE)
    with Image.open(path) as png:
        assert png.size[0] == 2 * 24


def many_classes_prediction(height: int, width: int, num_classes: int) -> np.ndarray:
    """(H, W) map with class k on k + 1 pixels (row-major runs), the remaining pixels ignored."""
    runs = np.repeat(np.arange(num_classes), np.arange(1, num_classes + 1))
    labels = np.full(height * width, 255, np.int64)
    labels[: len(runs)] = runs
    return labels.reshape(height, width)


def test_legend_of_150_present_classes_is_cut_to_the_panel_height(tmp_path, monkeypatch):
    palette = np.random.default_rng(0).integers(0, 256, (150, 3))
    names = [f"class {k}" for k in range(150)]
    height, width = 120, 100
    pred = many_classes_prediction(height, width, 150)
    image = np.zeros((height, width, 3), np.uint8)
    path = tmp_path / "many.png"
    drawn = {}
    monkeypatch.setattr(
        overlay,
        "render_panels",
        lambda *args: drawn.update(legend=args[3]) or render_panels(*args),
    )

    save_comparison(path, image, pred, pred, palette=palette, class_names=names)

    with Image.open(path) as png:
        assert png.size == (3 * width, TITLE_HEIGHT_PX + height + legend_band_height(png, height))
        assert legend_band_height(png, height) <= height
    legend = drawn["legend"]
    shown, (more, _) = legend[:-1], legend[-1]
    assert 0 < len(shown) < 150
    assert more == f"+{150 - len(shown)} more"
    # the classes with the most pixels are the ones named: 149, 148, ...
    assert [name for name, _ in shown] == names[::-1][: len(shown)]
    assert legend_height(legend, 3 * width) <= height
    assert legend_height(legend[:-1] + [(names[0], palette[0])] + legend[-1:], 3 * width) > height


def legend_band_height(png: Image.Image, panel_height: int) -> int:
    return png.size[1] - TITLE_HEIGHT_PX - panel_height


def test_legend_lists_only_present_classes_largest_first_when_they_fit(monkeypatch, tmp_path):
    palette = np.random.default_rng(0).integers(0, 256, (150, 3))
    pred = np.full((60, 80), 7)
    pred[:5] = 42
    gt = np.full((60, 80), 255)
    gt[:2, :2] = 3
    drawn = {}
    monkeypatch.setattr(overlay, "render_panels", lambda *args: drawn.update(legend=args[3]))
    save_comparison(tmp_path / "x.png", np.zeros((60, 80, 3), np.uint8), pred, gt, palette=palette)
    assert [name for name, _ in drawn["legend"]] == ["7", "42", "3"]


def test_fit_legend_keeps_a_few_rows_for_tiny_images():
    entries = [(f"class {k}", np.zeros(3, np.uint8)) for k in range(150)]
    fitted = fit_legend(entries, width=32, max_height=8)
    assert fitted[-1][0] == f"+{150 - (len(fitted) - 1)} more"
    assert legend_height(fitted, 32) <= MIN_LEGEND_HEIGHT_PX
    assert fit_legend(entries[:2], width=600, max_height=8) == entries[:2]
