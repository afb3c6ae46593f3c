"""Our safetensors format round-trips every architecture exactly, and the conversion tool writes
it from a foreign checkpoint."""

import json
import runpy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from dinoreg_dense.checkpoint import detect_format, read_arch, save_checkpoint
from dinoreg_dense.registry import MODELS

TOOL = Path(__file__).parents[2] / "tools" / "convert_checkpoint.py"


@pytest.mark.parametrize(
    "arch",
    [
        dict(embed_dim=64, depth=2, num_heads=2, num_register_tokens=4, pos_embed_grid=(3, 5)),
        # birder layout: registers before cls, RMSNorm; and no cls token at all
        dict(
            embed_dim=64,
            depth=1,
            num_heads=2,
            num_register_tokens=2,
            registers_before_cls=True,
            norm_layer="rmsnorm",
            pos_embed_includes_cls=False,
        ),
        dict(
            embed_dim=64,
            depth=1,
            num_heads=2,
            class_token=False,
            num_register_tokens=4,
            pos_embed_includes_cls=False,
            ffn_layer="swiglu",
            layerscale_init=None,
        ),
    ],
)
def test_round_trip_restores_arch_and_outputs(tmp_path, kit, arch):
    source = kit.randomise_(MODELS.build(dict(type="RegisterViT", arch=arch)))
    path = save_checkpoint(source, tmp_path / "backbone.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "dinoreg_dense"
    assert json.loads(metadata["arch"])["embed_dim"] == 64
    assert read_arch(path) == source.arch
    loaded = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    x = kit.images(50, 70)
    with torch.no_grad():
        a, b = source.forward_features(x), loaded.forward_features(x)
    for key in ("x_norm_patchtokens", "x_norm_regtokens", "x_prenorm"):
        assert torch.equal(a[key], b[key])


def test_state_dict_of_a_trained_model_loads_from_an_mmengine_checkpoint(tmp_path, kit):
    # A segmentor checkpoint saved by mmengine: {'meta': ..., 'state_dict': {'backbone.*', ...}}.
    source = kit.randomise_(MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=1)))
    state = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    state["decode_head.conv_seg.weight"] = torch.randn(3, 384, 1, 1)
    path = tmp_path / "iter_40000.pth"
    torch.save({"meta": {"iter": 40000}, "state_dict": state}, path)
    assert detect_format(path).endswith("under 'state_dict.backbone.'")
    loaded = MODELS.build(
        dict(type="RegisterViT", arch="vits14_reg4", depth=1, checkpoint=str(path))
    )
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_convert_tool_writes_a_file_that_loads_without_arch(tmp_path, kit, capsys):
    source = kit.randomise_(MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=1)))
    official = {
        ("patch_embed.proj." + k.split(".", 1)[1] if k.startswith("patch_embed.") else k): v
        for k, v in source.state_dict().items()
    }
    official["mask_token"] = torch.zeros(1, 384)
    official_path = tmp_path / "official.pth"
    torch.save(official, official_path)
    out = tmp_path / "converted.safetensors"

    main = runpy.run_path(str(TOOL))["main"]
    assert main([str(official_path), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "detected: official DINOv2 with registers" in printed
    assert "ViT-S/14 + 4 registers" in printed
    assert read_arch(out) == source.arch
    assert main([str(tmp_path / "missing.pth"), str(out)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    # a wrong --arch / --set is explained in the tool's own flags, a misspelt field named
    assert main([str(official_path), str(out), "--set", "depth=4"]) == 1
    assert "model.backbone.arch is --arch and its fields are --set" in capsys.readouterr().err
    assert main([str(official_path), str(out), "--set", "dept=12"]) == 1
    assert "did you mean 'depth'" in capsys.readouterr().err
    # values are checked against the field types: nothing wrong is written into the metadata
    for bad, expected in (
        ("interpolate_antialias=no", "interpolate_antialias='no' is not of type bool"),
        ("depth=four", "depth='four' is not of type int"),
        ("ffn_layer=swigl", "'mlp' or 'swiglu'"),
        ("depth", "expected FIELD=VALUE"),
    ):
        assert main([str(official_path), str(out), "--set", bad]) == 1, bad
        assert expected in capsys.readouterr().err, bad


def test_a_checkpoint_is_read_once_when_it_also_gives_the_architecture(tmp_path, kit, monkeypatch):
    from dinoreg_dense.checkpoint import loader

    source = kit.randomise_(MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=2)))
    path = tmp_path / "backbone.pth"  # a plain state dict: the architecture comes from shapes
    torch.save(source.state_dict(), path)
    reads = []
    original = loader.read_checkpoint
    monkeypatch.setattr(loader, "read_checkpoint", lambda p: reads.append(p) or original(p))
    loaded = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    assert len(reads) == 1
    assert loaded.arch == source.arch
    for key, value in source.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    # the conversion tool too: format, architecture and weights from one read
    assert runpy.run_path(str(TOOL))["main"]([str(path), str(tmp_path / "out.safetensors")]) == 0
    assert len(reads) == 2
