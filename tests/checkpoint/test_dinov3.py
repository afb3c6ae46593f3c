"""DINOv3: HF ``DINOv3ViTModel`` folders load into RegisterViT (RoPE, key bias masked) with
transformers' own outputs; the official ``.pth`` is still refused by name, not mistaken for
DINOv2 (whose error would ask for an ``arch`` setting that cannot help: DINOv3 has no table)."""

import dataclasses

import pytest
import torch
from safetensors.torch import save_file
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from dinoreg_dense.arch import ARCHS
from dinoreg_dense.backbones import rope
from dinoreg_dense.checkpoint import CheckpointError, PretrainedFile, detect_format, read_arch
from dinoreg_dense.registry import MODELS

DIM, HEADS, PATCH = 384, 6, 16  # ViT-S/16: a width whose head count the presets know
REFUSAL = "the official DINOv3 .pth format is not supported yet"
# 224 x 224; 48 x 80 (3 x 5 patches, rectangular); 50 x 90 (padded to 64 x 96).
SIZES = ((224, 224), (48, 80), (50, 90))
TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,  # head dim 16: 4 RoPE periods per axis
    intermediate_size=256,
    num_register_tokens=4,
    image_size=224,
    patch_size=PATCH,
)


def dinov3_state(rope: bool = True, storage: bool = True) -> dict[str, torch.Tensor]:
    """Official DINOv3 ViT key layout (one block, random values)."""
    state = {
        "cls_token": torch.randn(1, 1, DIM),
        "mask_token": torch.zeros(1, DIM),
        "patch_embed.proj.weight": torch.randn(DIM, 3, PATCH, PATCH),
        "patch_embed.proj.bias": torch.randn(DIM),
        "norm.weight": torch.ones(DIM),
        "norm.bias": torch.zeros(DIM),
    }
    if storage:
        state["storage_tokens"] = torch.randn(1, 4, DIM)
    if rope:
        state["rope_embed.periods"] = torch.rand(DIM // HEADS // 4)
    block = {
        "norm1.weight": torch.ones(DIM),
        "norm1.bias": torch.zeros(DIM),
        "attn.qkv.weight": torch.randn(3 * DIM, DIM),
        "attn.qkv.bias": torch.randn(3 * DIM),
        "attn.qkv.bias_mask": torch.ones(3 * DIM),
        "attn.proj.weight": torch.randn(DIM, DIM),
        "attn.proj.bias": torch.randn(DIM),
        "ls1.gamma": torch.full((DIM,), 1e-5),
        "norm2.weight": torch.ones(DIM),
        "norm2.bias": torch.zeros(DIM),
        "mlp.fc1.weight": torch.randn(4 * DIM, DIM),
        "mlp.fc1.bias": torch.randn(4 * DIM),
        "mlp.fc2.weight": torch.randn(DIM, 4 * DIM),
        "mlp.fc2.bias": torch.randn(DIM),
        "ls2.gamma": torch.full((DIM,), 1e-5),
    }
    state |= {f"blocks.0.{key}": value for key, value in block.items()}
    return state


@pytest.mark.parametrize(
    "container, options",
    [
        ("plain", dict()),
        ("teacher", dict()),
        ("plain", dict(rope=False)),  # storage tokens alone identify it
        ("plain", dict(storage=False)),  # RoPE periods alone identify it
    ],
)
def test_official_dinov3_pth_is_refused_by_name(tmp_path, container, options):
    state = dinov3_state(**options)
    if container == "teacher":
        state = {f"teacher.backbone.{key}": value for key, value in state.items()}
    path = tmp_path / "dinov3_vits16_pretrain.pth"
    torch.save(state, path)
    for read in (read_arch, PretrainedFile, detect_format):
        with pytest.raises(CheckpointError, match=REFUSAL) as error:
            read(path)
        message = str(error.value)
        assert str(path) in message and "DINOv3ViTModel folder" in message
        assert "pos_embed" not in message and "official DINOv2" not in message
    with pytest.raises(CheckpointError, match=REFUSAL):
        MODELS.build(dict(type="RegisterViT", arch="vits14", depth=1, checkpoint=str(path)))


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
    print(f"parity HF DINOv3ViTModel (224^2, 48x80, 50x90 padded): {diff:.2e}")
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
        patch.setattr("dinoreg_dense.backbones.vit.patch_coordinates", pixel_grid)
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


def test_gated_dinov3_is_refused_by_name(tmp_path):
    config = DINOv3ViTConfig(**TINY, use_gated_mlp=True)
    DINOv3ViTModel(config).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="SwiGLU"):
        read_arch(tmp_path)


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
