import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dinoreg_dense.backbones import RegisterViT
from dinoreg_dense.datasets.normalization import resize_short_side

TOOL = Path(__file__).parents[2] / "tools" / "analyze_features.py"
BACKBONE = dict(
    type="RegisterViT",
    arch="vits14_reg4",
    embed_dim=32,
    depth=2,
    num_heads=2,
    patch_size=8,
    pos_embed_grid=4,
    layerscale_init=1.0,
)
# A tiny DINOv3: patch 16, 4 registers, RoPE instead of a position table.
BACKBONE_DINOV3 = dict(
    type="RegisterViT",
    arch="vits16_dinov3",
    embed_dim=32,
    depth=2,
    num_heads=2,
    layerscale_init=1.0,
)
LAYER_KEYS = {
    "block",
    "norm_mean",
    "norm_median",
    "norm_max",
    "outlier_threshold",
    "outlier_count",
}


def run(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["analyze_features.py", *args])
    runpy.run_path(str(TOOL), run_name="__main__")


@pytest.mark.parametrize("backbone", [BACKBONE, BACKBONE_DINOV3], ids=["dinov2", "dinov3"])
def test_pictures_and_summary_of_two_photos_from_a_config(tmp_path, monkeypatch, capsys, backbone):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), np.uint8)).save(photos / "wide.jpg")
    Image.fromarray(rng.integers(0, 255, (50, 30, 3), np.uint8)).save(photos / "tall.png")
    config = tmp_path / "tiny.py"
    config.write_text(f"backbone = {backbone!r}\n")
    torch.manual_seed(0)
    weights = tmp_path / "tiny.pth"
    model = RegisterViT(**{k: v for k, v in backbone.items() if k != "type"})
    patch = model.patch_size
    torch.save(model.state_dict(), weights)
    out = tmp_path / "out"
    run(
        monkeypatch,
        str(config),
        str(photos),
        "--checkpoint",
        str(weights),
        "--size",
        "32",
        "--out",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "RANDOM" not in printed

    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["num_register_tokens"] == 4
    assert summary["model"]["random_weights"] is False
    assert summary["model"]["arch"]["embed_dim"] == 32
    assert summary["model"]["arch"]["pos_encoding"] == model.arch.pos_encoding
    assert set(summary["images"]) == {"wide", "tall"}
    sizes = {"wide": (32, 48), "tall": (53, 32)}  # shorter side resized to 32
    for name, (height, width) in sizes.items():
        entry = summary["images"][name]
        assert entry["input_size"] == [height, width]
        assert entry["patch_grid"] == [-(-height // patch), -(-width // patch)]
        assert [layer["block"] for layer in entry["layers"]] == [0, 1]
        assert all(set(layer) == LAYER_KEYS for layer in entry["layers"])
        assert len(entry["cls_attention"]["entropy"]) == 2
        assert np.array(entry["register_attention"]["entropy"]).shape == (4, 2)
        # The outlier count is that of the last layer's norms, recomputed here.
        image = np.asarray(Image.open(photos / ("wide.jpg" if name == "wide" else "tall.png")))
        _, x = resize_short_side(image, 32)
        with torch.no_grad():
            patches = model.forward_intermediates(x, out_indices=[-1], norm=False).patch_maps[0]
        norms = torch.linalg.norm(patches[0], dim=0)
        outliers = entry["outliers"]
        assert outliers["count"] == len(outliers["positions"])
        assert outliers["count"] == int((norms > outliers["threshold"]).sum())
        assert entry["layers"][-1]["norm_max"] == pytest.approx(float(norms.max()), rel=1e-5)

        pictures = {
            "norms": None,
            "outliers": 3 * width,
            "pca": 2 * width,
            "cls_attention": 4 * width,  # image + 2 heads + mean, in one row
            "registers": 5 * width,  # image + 4 registers
            "registers_per_head": 3 * width,  # image + 2 heads, one row per register
        }
        for kind, expected_width in pictures.items():
            with Image.open(out / f"{name}_{kind}.png") as picture:
                picture.verify()
            with Image.open(out / f"{name}_{kind}.png") as picture:
                assert picture.format == "PNG" and picture.mode in ("RGB", "RGBA")
                if expected_width is not None:
                    assert picture.width == expected_width and picture.height > height
                else:
                    assert picture.width > 100 and picture.height > 100
        with Image.open(out / f"{name}_registers_per_head.png") as picture:
            assert picture.height > 4 * height  # one row per register


def test_a_preset_without_registers_or_weights_says_so(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    run(monkeypatch, "vits14", "astronaut", "--size", "28", "--out", str(out))
    assert "RANDOM weights" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["random_weights"] is True
    assert summary["model"]["num_register_tokens"] == 0
    entry = summary["images"]["astronaut"]
    assert entry["register_attention"]["entropy"] == [] and entry["patch_grid"] == [2, 2]
    assert len(entry["layers"]) == 12
    assert (out / "astronaut_cls_attention.png").is_file()
    assert not list(out.glob("*registers*"))


def test_an_unknown_model_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        run(monkeypatch, "vits14_nope", "--out", str(tmp_path))
    assert "neither a config file nor a preset" in capsys.readouterr().err
