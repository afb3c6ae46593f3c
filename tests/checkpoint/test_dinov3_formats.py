"""DINOv3 in its other file formats: timm ``vit_*_patch16_dinov3*`` state dicts and the official
``.pth``, GELU and SwiGLU sizes, each loaded into RegisterViT with the architecture read from the
file and compared, every block and the normed last layer, with timm's ``Eva`` on random weights.

The official-layout file is written from a timm model by this test's own inverse mapping and
read back by two independent converters: ours and timm's ``eva.checkpoint_filter_fn``. Sizes:
224 x 224, 240 x 352 (15 x 22 patches) and 250 x 330 (zero-padded to 256 x 336).
"""

from dataclasses import replace

import pytest
import timm
import torch
from mmengine.logging import MMLogger
from safetensors.torch import save_file
from timm.models.eva import checkpoint_filter_fn

from dinoreg_dense.arch import ARCHS
from dinoreg_dense.checkpoint import CheckpointError, detect_format, read_arch
from dinoreg_dense.registry import MODELS

SIZES = ((224, 224), (240, 352), (250, 330))
PATCH = 16
DEPTH = 2
# timm name -> the preset the file must be recognised as (at depth 2).
VARIANTS = {
    "vit_small_patch16_dinov3_qkvb": "vits16_dinov3",
    "vit_small_patch16_dinov3": "vits16_dinov3",  # timm dropped the (zero) qkv biases
    "vit_small_plus_patch16_dinov3_qkvb": "vits16plus_dinov3",
}


def timm_reference(name: str, kit, seed: int = 3) -> torch.nn.Module:
    model = kit.randomise_(timm.create_model(name, pretrained=False, depth=DEPTH), seed=seed)
    with torch.no_grad():  # LayerScale large enough that every branch shows in the output
        for key, param in model.named_parameters():
            if ".gamma_" in key:
                param.uniform_(0.2, 1.0)
    return model.eval()


def timm_outputs(model, x):
    """Every block's raw output and the normed last layer, (B, T, C) each, [cls, reg, patches]."""
    blocks = []
    hooks = [
        block.register_forward_hook(lambda m, i, o: blocks.append(o)) for block in model.blocks
    ]
    with torch.no_grad():
        last = model.forward_features(x)
    for hook in hooks:
        hook.remove()
    return blocks, last


def max_diff(model, ref, kit) -> float:
    worst = 0.0
    for height, width in SIZES:
        x = kit.images(height, width)
        blocks, last = timm_outputs(ref, kit.pad_to_patches(x, PATCH))
        worst = max(worst, kit.compare(model, x, blocks, last))
    return worst


def load(path, **kwargs):
    return MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path), **kwargs)).eval()


def to_official(timm_state: dict, periods: torch.Tensor) -> dict:
    """timm Eva DINOv3 tensors -> the official dinov3 ``.pth`` layout (written independently of
    the loader under test): storage tokens, fused qkv bias with a junk key third and its mask,
    SwiGLU as w1 / w2 / w3, the mask token, RoPE periods and 7B's local cls norm."""
    state = {
        "mask_token": torch.zeros(1, timm_state["cls_token"].shape[-1]),
        "rope_embed.periods": periods,
    }
    swiglu = any(".mlp.fc1_g." in key for key in timm_state)
    for key, value in timm_state.items():
        if key.endswith("attn.q_bias"):
            v_bias = timm_state[key.replace("q_bias", "v_bias")]
            junk_key_bias = torch.full_like(value, 5.0)  # masked: must not matter
            state[key.replace("q_bias", "qkv.bias")] = torch.cat([value, junk_key_bias, v_bias])
            state[key.replace("q_bias", "qkv.bias_mask")] = torch.cat(
                [torch.ones_like(value), torch.zeros_like(value), torch.ones_like(value)]
            )
            continue
        if key.endswith("attn.v_bias"):
            continue
        for old, new in (
            ("reg_token", "storage_tokens"),
            ("gamma_1", "ls1.gamma"),
            ("gamma_2", "ls2.gamma"),
            ("mlp.fc1_g.", "mlp.w1."),
            ("mlp.fc1_x.", "mlp.w2."),
        ):
            key = key.replace(old, new)
        if swiglu:
            key = key.replace("mlp.fc2.", "mlp.w3.")
        state[key] = value
    dim = timm_state["cls_token"].shape[-1]
    state["local_cls_norm.weight"], state["local_cls_norm.bias"] = torch.ones(dim), torch.zeros(dim)
    return state


def periods_for(model, rounding: torch.dtype) -> torch.Tensor:
    head_dim = model.embed_dim // model.blocks[0].attn.num_heads
    exact = 100.0 ** (torch.arange(head_dim // 4, dtype=torch.float64) * 4 / head_dim)
    return exact.to(rounding)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_timm_dinov3_state_dict_matches_timm(name, kit, tmp_path):
    ref = timm_reference(name, kit)
    path = tmp_path / f"{name}.safetensors"
    save_file(ref.state_dict(), path)
    assert detect_format(path) == "timm DINOv3 (Eva)"
    arch = read_arch(path)
    assert arch == replace(ARCHS[VARIANTS[name]], depth=DEPTH, qkv_bias="qkvb" in name)
    diff = max_diff(load(path), ref, kit)
    print(f"parity timm {name} (224^2, 240x352, 250x330 padded): {diff:.2e}")
    assert diff <= kit.TOLERANCE


def official_file(tmp_path, ref, rounding: torch.dtype, container: str = "") -> tuple:
    """The official .pth of ``ref``'s weights and a timm model that read it with timm's own
    converter (its RoPE periods set to the file's, which timm otherwise recomputes)."""
    periods = periods_for(ref, rounding)
    state = to_official(ref.state_dict(), periods)
    path = tmp_path / "dinov3_vits16_pretrain_lvd1689m.pth"
    torch.save({f"{container}{key}": value for key, value in state.items()}, path)
    reader = timm.create_model(ref.default_cfg["architecture"], pretrained=False, depth=DEPTH)
    reader.load_state_dict(checkpoint_filter_fn(state, reader))
    with torch.no_grad():
        reader.rope.periods.copy_(periods.float())
    return path, reader.eval()


@pytest.mark.parametrize(
    "name, rounding",
    [
        ("vit_small_patch16_dinov3_qkvb", torch.float32),
        ("vit_small_plus_patch16_dinov3_qkvb", torch.bfloat16),  # SwiGLU w1 / w2 / w3
    ],
)
def test_official_dinov3_pth_matches_timm_reading_it(name, rounding, kit, tmp_path):
    ref = timm_reference(name, kit)
    path, reader = official_file(tmp_path, ref, rounding, container="teacher.backbone.")
    assert detect_format(path) == "official DINOv3 under 'teacher.backbone.'"
    arch = read_arch(path)
    expected = "bfloat16" if rounding == torch.bfloat16 else "float32"
    assert arch == replace(ARCHS[VARIANTS[name]], depth=DEPTH, rope_periods_dtype=expected)
    diff = max_diff(load(path), reader, kit)
    print(f"parity official {name} .pth, {expected} periods: {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_bfloat16_periods_change_outputs_measurably(kit, tmp_path):
    """What the stored bfloat16 periods do: the model with float32 periods (HF, timm) and the one
    with the file's periods (the official code) differ by more than float32 noise, and our model
    follows the file."""
    ref = timm_reference("vit_small_patch16_dinov3_qkvb", kit)
    path, reader = official_file(tmp_path, ref, torch.bfloat16)
    gap = max_diff(load(path, rope_periods_dtype="float32"), reader, kit)
    ours = max_diff(load(path), reader, kit)
    print(f"float32 vs the file's bfloat16 periods: {gap:.2e}; ours: {ours:.2e}")
    assert gap > 10 * kit.TOLERANCE
    assert ours <= kit.TOLERANCE


def test_official_dinov3_pth_refuses_damage_by_name(kit, tmp_path):
    ref = timm_reference("vit_small_patch16_dinov3_qkvb", kit)
    state = to_official(ref.state_dict(), periods_for(ref, torch.bfloat16))
    bad_periods = dict(state, **{"rope_embed.periods": state["rope_embed.periods"] * 1.5})
    bad_mask = dict(state, **{"blocks.0.attn.qkv.bias_mask": torch.ones(3 * 384)})
    no_w2 = {k: v for k, v in state.items() if ".mlp.fc2." not in k}
    for damaged, message in ((bad_periods, "not base 100 periods"), (bad_mask, "key third")):
        path = tmp_path / "damaged.pth"
        torch.save(damaged, path)
        with pytest.raises(CheckpointError, match=message) as error:
            load(path)
        assert str(path) in str(error.value)
    path = tmp_path / "truncated.pth"
    torch.save(no_w2, path)
    with pytest.raises(CheckpointError, match="mlp.fc2"):
        MODELS.build(
            dict(type="RegisterViT", arch="vits16_dinov3", depth=DEPTH, checkpoint=str(path))
        )


def test_swiglu_sizes_are_the_released_widths():
    widths = {
        name: ARCHS[name].ffn_hidden
        for name in ("vits16plus_dinov3", "vith16plus_dinov3", "vit7b16_dinov3")
    }
    assert widths == {"vits16plus_dinov3": 1536, "vith16plus_dinov3": 5120, "vit7b16_dinov3": 8192}
    seven_b = ARCHS["vit7b16_dinov3"]
    assert (seven_b.embed_dim, seven_b.depth, seven_b.num_heads, seven_b.qkv_bias) == (
        4096,
        40,
        32,
        False,
    )
    h_plus = ARCHS["vith16plus_dinov3"]
    assert (h_plus.embed_dim, h_plus.depth, h_plus.num_heads) == (1280, 32, 20)
    block = MODELS.build(dict(type="RegisterViT", arch="vith16plus_dinov3", depth=1)).blocks[0]
    assert block.mlp.w12.weight.shape == (2 * 5120, 1280) and block.attn.qkv.bias is not None


def test_official_dinov3_without_bias_mask_keeps_the_key_bias(kit, tmp_path):
    """``mask_k_bias=False`` models store no ``bias_mask``: their key bias is real."""
    ref = timm_reference("vit_small_patch16_dinov3_qkvb", kit)
    state = to_official(ref.state_dict(), periods_for(ref, torch.bfloat16))
    path = tmp_path / "unmasked.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("bias_mask")}, path)
    assert read_arch(path).key_bias
    torch.save(state, path)
    assert not read_arch(path).key_bias


def test_official_file_into_a_preset_notes_the_periods_and_refuses_what_would_compute_wrong(
    kit, tmp_path, capfd
):
    ref = timm_reference("vit_small_patch16_dinov3_qkvb", kit)
    state = to_official(ref.state_dict(), periods_for(ref, torch.bfloat16))
    path = tmp_path / "official.pth"
    torch.save(state, path)
    MMLogger.get_instance("dinov3_into_preset", log_level="INFO")  # as the tools' runners do
    preset = dict(type="RegisterViT", arch="vits16_dinov3", depth=DEPTH)
    MODELS.build(dict(preset, checkpoint=str(path)))
    assert "rope_periods_dtype=float32 (file: bfloat16)" in "".join(capfd.readouterr())
    # Shapes fit, but 12 heads of 32 channels rotate other pairs: refused, not loaded.
    with pytest.raises(CheckpointError, match=r"num_heads=12 \(file: 6\)") as error:
        MODELS.build(dict(preset, num_heads=12, checkpoint=str(path)))
    assert "model.backbone.arch=None" in str(error.value)
    # A preset does not bypass the periods check that arch=None makes.
    torch.save(dict(state, **{"rope_embed.periods": state["rope_embed.periods"] * 1.5}), path)
    with pytest.raises(CheckpointError, match="not base 100 periods"):
        MODELS.build(dict(preset, checkpoint=str(path)))


def test_mismatch_message_gives_arch_none_and_the_command_line_spelling(kit, tmp_path):
    ref = timm_reference("vit_small_patch16_dinov3_qkvb", kit)
    path = tmp_path / "official.pth"
    torch.save(to_official(ref.state_dict(), periods_for(ref, torch.bfloat16)), path)
    with pytest.raises(CheckpointError) as error:
        MODELS.build(dict(type="RegisterViT", arch="vitb16_dinov3", checkpoint=str(path)))
    message = str(error.value)
    assert "set model.backbone.arch=None to take the architecture from the file" in message
    assert "--cfg-options model.backbone.arch=vits16_dinov3 model.backbone.depth=2)" in message
