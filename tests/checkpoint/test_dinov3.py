"""DINOv3: HF ``DINOv3ViTModel`` folders (GELU and gated sizes) load into RegisterViT (RoPE, key
bias masked) with transformers' own outputs. timm and official files: test_dinov3_formats.py."""

import dataclasses

import pytest
import torch
from safetensors.torch import save_file
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from dinoreg_dense.arch import ARCHS
from dinoreg_dense.backbones import rope
from dinoreg_dense.checkpoint import CheckpointError, detect_format, read_arch
from dinoreg_dense.registry import MODELS

DIM, HEADS, PATCH = 384, 6, 16  # ViT-S/16: a width whose head count the presets know
# 224 x 224; 240 x 352 (15 x 22 patches, rectangular); 250 x 330 (padded to 256 x 336).
SIZES = ((224, 224), (240, 352), (250, 330))
TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,  # head dim 16: 4 RoPE periods per axis
    intermediate_size=256,
    num_register_tokens=4,
    image_size=224,
    patch_size=PATCH,
)


@pytest.fixture(scope="module")
def hf_dinov3(tmp_path_factory, kit):
    # pos_embed_rescale is DINOv3's training-time augmentation; eval mode must ignore it.
    ref = kit.randomise_(DINOv3ViTModel(DINOv3ViTConfig(**TINY, pos_embed_rescale=2.0)), seed=7)
    folder = tmp_path_factory.mktemp("hf_dinov3")
    ref.save_pretrained(folder)
    return ref, folder


def max_diff_to_hf(model, ref, kit) -> float:
    """Worst difference over SIZES: every block's raw output and the normed last layer (cls,
    registers, patches); the reference sees the zero-padded image (HF drops the remainder)."""
    worst = 0.0
    for height, width in SIZES:
        x = kit.images(height, width, batch=2)
        with torch.no_grad():
            out = ref(pixel_values=kit.pad_to_patches(x, PATCH), output_hidden_states=True)
        worst = max(
            worst, kit.compare(model, x, list(out.hidden_states[1:]), out.last_hidden_state)
        )
    return worst


def build(folder, **kwargs):
    return MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(folder), **kwargs))


def test_hf_dinov3_folder_matches_transformers(hf_dinov3, kit):
    ref, folder = hf_dinov3
    assert "Hugging Face DINOv3ViTModel" in detect_format(folder)
    arch = read_arch(folder)
    assert (arch.pos_encoding, arch.rope_base, arch.key_bias) == ("rope", 100.0, False)
    assert (arch.num_register_tokens, arch.norm_eps, arch.rope_rescale) == (4, 1e-5, None)
    model = build(folder).eval()
    assert model.pos_embed is None
    diff = max_diff_to_hf(model, ref, kit)
    print(f"parity HF DINOv3ViTModel (224^2, 240x352, 250x330 padded): {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_parity_detects_broken_rope(hf_dinov3, kit, monkeypatch):
    """The parity check fails when the RoPE is wrong: coordinates not normalised to [-1, 1],
    or the prefix tokens rotated too."""
    ref, folder = hf_dinov3
    model = build(folder).eval()
    unnormalised = rope.patch_coordinates

    def pixel_grid(grid, device=None):
        return unnormalised(grid, device) * torch.tensor([grid[0], grid[1]]) / 2

    with monkeypatch.context() as patch:
        patch.setattr("dinoreg_dense.backbones.rope.patch_coordinates", pixel_grid)
        broken = max_diff_to_hf(model, ref, kit)
        print(f"broken RoPE: {broken:.2e}")
        assert broken > 0.01
    apply = rope.apply_rope

    def rotate_all(x, cos, sin):  # the prefix tokens rotated as if at the first patch
        prefix = x.shape[-2] - cos.shape[0]
        cos_all = torch.cat((cos[:1].expand(prefix, -1), cos))
        sin_all = torch.cat((sin[:1].expand(prefix, -1), sin))
        return apply(x, cos_all, sin_all)

    with monkeypatch.context() as patch:
        patch.setattr("dinoreg_dense.backbones.attention.apply_rope", rotate_all)
        broken = max_diff_to_hf(model, ref, kit)
        print(f"broken RoPE: {broken:.2e}")
        assert broken > 0.01
    assert max_diff_to_hf(model, ref, kit) <= kit.TOLERANCE


def test_key_bias_is_masked(hf_dinov3, kit):
    """A non-zero key bias in our qkv parameter changes nothing: DINOv3 masks it."""
    ref, folder = hf_dinov3
    model = build(folder).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.bias[TINY["hidden_size"] : 2 * TINY["hidden_size"]] = 3.0
    assert max_diff_to_hf(model, ref, kit) <= kit.TOLERANCE


def test_training_time_rescaling_is_an_option_off_by_default(hf_dinov3):
    _, folder = hf_dinov3
    x = torch.randn(1, 3, 64, 64)
    plain = build(folder).train()
    with torch.no_grad():
        assert torch.equal(plain(x).patch_maps[0], plain.eval()(x).patch_maps[0])
    rescaled = build(folder, rope_rescale=2.0).train()
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = rescaled(x).patch_maps[0], rescaled(x).patch_maps[0]
        assert not torch.allclose(first, second)
        assert torch.equal(rescaled.eval()(x).patch_maps[0], plain(x).patch_maps[0])


def test_dinov3_weights_without_config_are_refused_with_the_fix(hf_dinov3, tmp_path):
    ref, _ = hf_dinov3
    save_file(dict(ref.state_dict()), tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="need the config.json"):
        read_arch(tmp_path / "model.safetensors")


@pytest.mark.parametrize(
    "options",
    [
        # S+ / H+ style: SwiGLU (SiLU gate) of a width no ratio rule gives (ffn_hidden_dim).
        dict(use_gated_mlp=True, hidden_act="silu", intermediate_size=100),
        # 7B style: SwiGLU, no query / value bias.
        dict(use_gated_mlp=True, hidden_act="silu", query_bias=False, value_bias=False),
    ],
)
def test_gated_dinov3_folder_matches_transformers(options, kit, tmp_path):
    ref = kit.randomise_(DINOv3ViTModel(DINOv3ViTConfig(**{**TINY, **options})), seed=11)
    ref.save_pretrained(tmp_path)
    arch = read_arch(tmp_path)
    assert arch.ffn_layer == "swiglu" and arch.qkv_bias == options.get("query_bias", True)
    assert arch.ffn_hidden == options.get("intermediate_size", TINY["intermediate_size"])
    diff = max_diff_to_hf(build(tmp_path).eval(), ref, kit)
    print(f"parity HF gated DINOv3 {options}: {diff:.2e}")
    assert diff <= kit.TOLERANCE


@pytest.mark.parametrize(
    "name, dim, heads", [("vits16_dinov3", 384, 6), ("vitb16_dinov3", 768, 12)]
)
def test_dinov3_presets(name, dim, heads):
    arch = ARCHS[name]
    assert (arch.embed_dim, arch.num_heads, arch.patch_size, arch.num_register_tokens) == (
        dim,
        heads,
        16,
        4,
    )
    assert (arch.norm_eps, arch.mlp_ratio, arch.layerscale_init) == (1e-5, 4.0, 1e-5)
    assert (arch.pos_encoding, arch.rope_base, arch.key_bias, arch.rope_rescale) == (
        "rope",
        100.0,
        False,
        None,
    )
    model = MODELS.build(dict(type="RegisterViT", arch=name, depth=1)).eval()
    features = model(torch.randn(1, 3, 50, 90))
    assert features.patch_maps[0].shape == (1, dim, 4, 6)
    assert dataclasses.replace(arch, depth=1) == model.arch


def test_rope_periods_follow_the_dinov3_formula():
    periods = rope.rope_periods(64, 100.0)
    expected = torch.tensor([100.0 ** (2 * i / 32) for i in range(16)])
    torch.testing.assert_close(periods, expected)
    coords = rope.patch_coordinates((2, 4))
    assert coords[0].tolist() == [-0.5, -0.75] and coords[-1].tolist() == [0.5, 0.75]
