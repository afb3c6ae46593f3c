"""birder ViT files load into RegisterViT with outputs equal to birder's own ``ViT``.

Each case builds a registered birder network (small overrides through birder's config, as its
``--model-config`` does) with random weights, writes it the way birder does (``checkpoint_model``
for ``.pt``, ``save_st`` for ``.safetensors``) and loads it with ``arch=None``. birder resamples
position embeddings only with ``set_dynamic_size()`` and drops the pixels past the last whole
patch, so it gets the zero-padded image (what RegisterViT pads to) at the odd size.
"""

import json

import pytest
import torch
from birder.common import fs_ops, lib
from birder.conf import settings
from birder.model_registry import registry
from birder.net.base import get_signature
from torchvision.models.vision_transformer import VisionTransformer

from dinoreg_dense.checkpoint import (
    CheckpointError,
    convert_birder,
    detect_format,
    read_arch,
)
from dinoreg_dense.registry import MODELS

# A square size, a rectangular 15 x 20 patch grid, and a size RegisterViT pads to 240 x 336.
SIZES = ((224, 224), (240, 320), (238, 322))
RGB_STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
TINY = {"hidden_dim": 64, "num_heads": 4, "mlp_dim": 256, "num_layers": 2}

# (registered network, config overrides, trained size, file kind)
CASES = {
    # I-JEPA layout: RMSNorm, 4 registers, no cls token, registers positioned; width 512 so the
    # head count (8) comes from birder's size table, not from the file's config.
    "m16_rms_avg_pt": ("vit_reg4_m16_rms_avg", {"num_layers": 2}, (224, 224), "pt"),
    # [reg x4, cls, patches], all positioned; RMSNorm, LayerScale, antialiased resampling.
    "reg4_cls_rms_ls_st": (
        "vit_reg4_b16",
        {
            **TINY,
            "norm_layer_type": "RMSNorm",
            "layer_scale_init_value": 1e-5,
            "pos_embed_antialias": True,
        },
        (224, 224),
        "safetensors",
    ),
    # DeiT III registers: only patches positioned, LayerNorm, MLP ratio 3, a non-square grid.
    "deit3_reg4_nps_pt": ("deit3_reg4_m16", {**TINY, "mlp_dim": 192}, (192, 256), "pt"),
}


def birder_net(network: str, config: dict, size: tuple[int, int], kit, seed: int):
    net = registry.net_factory(network, 0, 3, config=config, size=size)
    kit.randomise_(net, seed=seed)
    net.set_dynamic_size()
    return net


def save_birder(net, network: str, config: dict, size, kind: str, folder, monkeypatch):
    """Write ``net`` as birder's tools do; returns the file."""
    signature = get_signature((1, 3, *size), 0)
    if kind == "safetensors":
        path = folder / f"{network}_test.safetensors"
        fs_ops.save_st(net, str(path), net.task, {}, signature, RGB_STATS, external_config=config)
        return path
    monkeypatch.setattr(settings, "MODELS_DIR", folder)
    fs_ops.checkpoint_model(
        f"{network}_test", 1, net, signature, {}, RGB_STATS, None, None, None, None,
        external_config=config,
    )  # fmt: skip
    return fs_ops.model_path(f"{network}_test", epoch=1)


def birder_tokens(net, x) -> tuple[list[torch.Tensor], torch.Tensor]:
    """birder's raw output of every block and its normed last layer, [reg, cls, patches]."""
    blocks: list[torch.Tensor] = []
    hooks = [b.register_forward_hook(lambda m, i, o: blocks.append(o)) for b in net.encoder.block]
    try:
        with torch.no_grad():
            normed = net.forward_features(x)
    finally:
        for hook in hooks:
            hook.remove()
    return blocks, normed


def our_tokens(model, x) -> tuple[list[torch.Tensor], torch.Tensor]:
    """RegisterViT's outputs reassembled in birder's order [reg, cls, patches]."""
    depth = model.num_layers
    with torch.no_grad():
        raw = model.forward_intermediates(x, out_indices=list(range(depth)), norm=False)
        normed = model.forward_intermediates(x, out_indices=[depth - 1], norm=True)

    def sequence(features, i):
        parts = [features.register_tokens[i]]
        if features.cls_tokens is not None:
            parts.append(features.cls_tokens[i][:, None])
        parts.append(features.patch_maps[i].flatten(2).transpose(1, 2))
        return torch.cat(parts, dim=1)

    return [sequence(raw, i) for i in range(depth)], sequence(normed, 0)


def max_diff_to_birder(model, net, kit, sizes=SIZES) -> dict[tuple[int, int], float]:
    diffs = {}
    for height, width in sizes:
        x = kit.images(height, width, batch=2)
        ref_blocks, ref_normed = birder_tokens(net, kit.pad_to_patches(x, 16))
        blocks, normed = our_tokens(model, x)
        assert len(blocks) == len(ref_blocks)
        pairs = [*zip(blocks, ref_blocks, strict=True), (normed, ref_normed)]
        diffs[(height, width)] = max(float((a - b).abs().max()) for a, b in pairs)
    return diffs


@pytest.fixture(params=list(CASES))
def birder_file(request, tmp_path, monkeypatch, kit):
    network, config, size, kind = CASES[request.param]
    net = birder_net(network, config, size, kit, seed=len(request.param))
    path = save_birder(net, network, config, size, kind, tmp_path, monkeypatch)
    return request.param, net, path


def test_birder_files_match_birder_with_inferred_arch(birder_file, kit):
    case, net, path = birder_file
    network, config, size, kind = CASES[case]
    assert detect_format(path) == ("birder ViT under 'state.'" if kind == "pt" else "birder ViT")
    arch = read_arch(path)
    assert arch.registers_before_cls and arch.num_register_tokens == 4
    assert arch.depth == 2 and arch.patch_size == 16
    assert arch.pos_embed_grid == (size[0] // 16, size[1] // 16)
    assert arch.num_heads == config.get("num_heads", 8)
    assert arch.norm_layer == ("rmsnorm" if "rms" in case else "layernorm")
    assert arch.class_token == ("avg" not in network)
    assert arch.interpolate_antialias == config.get("pos_embed_antialias", False)
    model = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    diffs = max_diff_to_birder(model, net, kit)
    print(f"parity birder {case}: " + ", ".join(f"{h}x{w} {d:.1e}" for (h, w), d in diffs.items()))
    assert max(diffs.values()) <= kit.TOLERANCE


def test_birder_ijepa_file_loads_into_the_preset(tmp_path, monkeypatch, kit):
    # The preset is birder's I-JEPA M/16 (2 blocks here), resampling included.
    network, config, size, kind = CASES["m16_rms_avg_pt"]
    net = birder_net(network, config, size, kit, seed=3)
    path = save_birder(net, network, config, size, kind, tmp_path, monkeypatch)
    model = MODELS.build(
        dict(type="RegisterViT", arch="vitm16_reg4_rms_nocls", depth=2, checkpoint=str(path))
    )
    assert max(max_diff_to_birder(model, net, kit).values()) <= kit.TOLERANCE


def test_position_rows_of_special_tokens_are_recognised_without_signature(birder_file):
    case, _, path = birder_file
    state = torch.load(path, weights_only=True)["state"] if path.suffix == ".pt" else None
    if state is None:
        from safetensors.torch import load_file

        state = load_file(path)
    size = CASES[case][2]
    with_signature = convert_birder(state, image_size=size)
    if size[0] == size[1]:  # a square grid is enough to tell the layouts apart
        without = convert_birder(state)
        assert with_signature.keys() == without.keys()
        assert all(torch.equal(with_signature[k], without[k]) for k in without)
    else:
        with pytest.raises(ValueError, match="square"):
            convert_birder(state)


def test_birder_file_missing_a_tensor_names_file_format_and_key(tmp_path, monkeypatch, kit):
    network, config, size, kind = CASES["m16_rms_avg_pt"]
    net = birder_net(network, config, size, kit, seed=5)
    path = save_birder(net, network, config, size, kind, tmp_path, monkeypatch)
    contents = torch.load(path, weights_only=True)
    del contents["state"]["encoder.block.1.norm2.weight"]
    torch.save(contents, path)
    with pytest.raises(CheckpointError) as error:
        MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    message = str(error.value)
    assert str(path) in message and "birder ViT" in message
    assert "missing from the file: blocks.1.norm2.weight" in message


@pytest.mark.parametrize(
    "network, config, file_name, expected",
    [
        ("vit_reg4_b16", {**TINY, "pre_norm": True}, "vit_b16_pn.pt", "pre_norm=True"),
        ("vit_reg4_b16", {**TINY, "qk_norm": True}, "vit_qk.pt", "qk_norm=True"),
        ("vit_reg4_b16", {**TINY, "mlp_layer_type": "SwiGLU_FFN"}, "vit_swiglu.pt", "SwiGLU"),
        ("vit_reg4_b16", {**TINY, "stem_type": "hmlp"}, "vit_hmlp.pt", "hMLP"),
        ("rope_vit_reg4_m16", TINY, "rope_vit_reg4_m16_i-jepa.pt", "'rope'-family"),
    ],
)
def test_birder_variants_registervit_does_not_compute_are_refused(
    tmp_path, kit, network, config, file_name, expected
):
    net = birder_net(network, config, (224, 224), kit, seed=7)
    path = tmp_path / file_name
    signature = get_signature((1, 3, 224, 224), 0)
    torch.save({"state": net.state_dict(), "birder_version": "0.8.4", "signature": signature}, path)
    model = MODELS.build(dict(type="RegisterViT", arch="vitb16_reg4_rms_nocls", depth=2))
    with pytest.raises(CheckpointError, match=expected) as error:
        model.load_pretrained(path)
    assert str(path) in str(error.value) and "birder ViT" in str(error.value)
    with pytest.raises(CheckpointError, match=expected):
        read_arch(path)


def test_birder_config_json_next_to_the_file_gives_the_full_config(tmp_path, kit):
    # Without a 'config' entry the 64-wide net's head count is unknown; birder's
    # `convert-model --config` JSON (full config and network name) supplies it.
    net = birder_net("vit_reg4_b16", TINY, (224, 224), kit, seed=9)
    signature = get_signature((1, 3, 224, 224), 0)
    path = tmp_path / "vit_reg4_b16_tiny.pt"
    torch.save({"state": net.state_dict(), "birder_version": "0.8.4", "signature": signature}, path)
    with pytest.raises(CheckpointError, match="no head count for embed dim 64"):
        read_arch(path)
    sidecar = tmp_path / "vit_reg4_b16_tiny.pt_config.json"
    sidecar.write_text(json.dumps(lib.get_network_config(net, signature, RGB_STATS)))
    assert read_arch(path).num_heads == 4
    model = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    assert max(max_diff_to_birder(model, net, kit, sizes=[(240, 320)]).values()) <= kit.TOLERANCE
    rope = json.loads(sidecar.read_text()) | {"name": "rope_vit"}
    sidecar.write_text(json.dumps(rope))
    with pytest.raises(CheckpointError, match="names the birder network 'rope_vit'"):
        read_arch(path)


def test_torchvision_vit_is_not_taken_for_birder(tmp_path):
    # torchvision also calls its patch embedding 'conv_proj'; its blocks are named differently.
    vit = VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64
    )
    path = tmp_path / "torchvision_vit.pth"
    torch.save(vit.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a birder ViT") as error:
        read_arch(path)
    assert str(path) in str(error.value)
