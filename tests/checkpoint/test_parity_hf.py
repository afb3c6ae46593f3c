"""Hugging Face folders load into RegisterViT with outputs equal to transformers' own models.

Checked on random weights: Dinov2WithRegistersModel (safetensors), Dinov2Model
(pytorch_model.bin), ViTModel with DINO v1 settings, the *ForImageClassification wrappers, and
state dicts under the module names of transformers >= 5 (q_proj / gate_proj / layers.i).
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    Dinov2Config,
    Dinov2ForImageClassification,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
)

from dinoreg_dense.checkpoint import read_arch
from dinoreg_dense.registry import MODELS

VITS = dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)


def max_diff_to_hf(model, ref, kit, sizes=None, **forward_kwargs) -> float:
    """Worst difference over all sizes; the reference sees the zero-padded image."""
    worst = 0.0
    for height, width in sizes or kit.SIZES:
        x = kit.images(height, width)
        with torch.no_grad():
            out = ref(
                pixel_values=kit.pad_to_patches(x, model.patch_size),
                output_hidden_states=True,
                **forward_kwargs,
            )
        hidden = list(out.hidden_states[1:])  # [0] is the embedding output
        worst = max(worst, kit.compare(model, x, hidden, out.last_hidden_state))
    return worst


def build(checkpoint: Path, arch=None, **kwargs):
    return MODELS.build(dict(type="RegisterViT", arch=arch, checkpoint=str(checkpoint), **kwargs))


def save_as_bin(folder: Path, state: dict[str, torch.Tensor], config: dict) -> Path:
    """An HF folder with pytorch_model.bin (what older transformers wrote) instead of
    safetensors."""
    folder.mkdir()
    torch.save(state, folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def hf_registers(tmp_path_factory, kit):
    config = Dinov2WithRegistersConfig(**VITS, image_size=518, patch_size=14)
    ref = kit.randomise_(Dinov2WithRegistersModel(config))
    folder = tmp_path_factory.mktemp("hf_dinov2_reg")
    ref.save_pretrained(folder)
    return ref, folder


def test_dinov2_with_registers_folder_matches_hf(hf_registers, kit):
    ref, folder = hf_registers
    model = build(folder)
    assert model.num_register_tokens == 4 and model.arch.pos_embed_grid == (37, 37)
    diff = max_diff_to_hf(model, ref, kit)
    print(f"parity HF Dinov2WithRegistersModel safetensors: {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_preset_arch_gives_the_same_numbers_as_the_config(hf_registers, kit):
    # vits14_reg4 resamples like HF's register model (antialias, offset 0).
    ref, folder = hf_registers
    model = build(folder, arch="vits14_reg4", depth=4)
    assert max_diff_to_hf(model, ref, kit, sizes=[(238, 322)]) <= kit.TOLERANCE


def test_parity_check_detects_wrong_weights(hf_registers, kit):
    ref, _ = hf_registers
    random_model = MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=4))
    assert max_diff_to_hf(random_model, ref, kit, sizes=[(224, 224)]) > 0.1


def test_dinov2_pytorch_model_bin_matches_hf(tmp_path, kit):
    config = Dinov2Config(**VITS, image_size=518, patch_size=14)
    ref = kit.randomise_(Dinov2Model(config), seed=2)
    ref.save_pretrained(tmp_path / "saved")
    hub_names = load_file(tmp_path / "saved" / "model.safetensors")
    assert "encoder.layer.0.attention.attention.query.weight" in hub_names
    folder = save_as_bin(tmp_path / "bin", hub_names, config.to_dict())
    arch = read_arch(folder)
    assert (arch.interpolate_antialias, arch.interpolate_offset) == (False, 0.0)
    diff = max_diff_to_hf(build(folder), ref, kit)
    print(f"parity HF Dinov2Model pytorch_model.bin: {diff:.2e}")
    assert diff <= kit.TOLERANCE


@pytest.mark.parametrize("patch_size", [16, 8])
def test_vit_model_with_dino_v1_settings_matches_hf(tmp_path, kit, patch_size):
    config = ViTConfig(
        **VITS, intermediate_size=1536, patch_size=patch_size, image_size=224, qkv_bias=True
    )
    ref = kit.randomise_(ViTModel(config), seed=3)  # with pooler: it must be ignored
    ref.save_pretrained(tmp_path)
    model = build(tmp_path)
    assert model.arch.layerscale_init is None and model.arch.norm_eps == 1e-12
    diff = max_diff_to_hf(model, ref, kit, interpolate_pos_encoding=True)
    print(f"parity HF ViTModel (DINO v1, patch {patch_size}): {diff:.2e}")
    assert diff <= kit.TOLERANCE


@pytest.mark.parametrize(
    "wrapper, config",
    [
        (Dinov2ForImageClassification, Dinov2Config(**TINY, image_size=56, num_labels=3)),
        (ViTForImageClassification, ViTConfig(**TINY, intermediate_size=256, image_size=32)),
    ],
)
def test_image_classification_wrappers_load_their_backbone(tmp_path, kit, wrapper, config):
    ref = kit.randomise_(wrapper(config), seed=4)
    ref.save_pretrained(tmp_path)
    base = ref.dinov2 if hasattr(ref, "dinov2") else ref.vit
    kwargs = {} if hasattr(ref, "dinov2") else {"interpolate_pos_encoding": True}
    diff = max_diff_to_hf(build(tmp_path), base, kit, sizes=[(56, 70)], **kwargs)
    assert diff <= kit.TOLERANCE


@pytest.mark.parametrize(
    "model_class, config",
    [
        (Dinov2Model, Dinov2Config(**TINY, image_size=56, use_swiglu_ffn=True)),
        (ViTModel, ViTConfig(**TINY, intermediate_size=256, image_size=32)),
    ],
)
def test_transformers_5_module_names(tmp_path, kit, model_class, config):
    ref = kit.randomise_(model_class(config), seed=5)
    state = ref.state_dict()  # in-memory names: q_proj / k_proj / v_proj, gate_proj, layers.i
    assert any(".q_proj." in key for key in state)
    folder = save_as_bin(tmp_path / "v5", state, config.to_dict())
    kwargs = {"interpolate_pos_encoding": True} if model_class is ViTModel else {}
    assert max_diff_to_hf(build(folder), ref, kit, sizes=[(56, 70)], **kwargs) <= kit.TOLERANCE


def test_sharded_safetensors_folder(tmp_path, kit):
    ref = kit.randomise_(Dinov2Model(Dinov2Config(**TINY, image_size=56)), seed=6)
    ref.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    assert max_diff_to_hf(build(tmp_path), ref, kit, sizes=[(56, 70)]) <= kit.TOLERANCE


def test_weight_file_inside_an_hf_folder_uses_its_config(hf_registers):
    _, folder = hf_registers
    assert read_arch(folder / "model.safetensors") == read_arch(folder)
