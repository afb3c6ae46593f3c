"""Official DINOv2 / DINO v1 ``.pth`` layouts, written here from timm / HF weights under the
official key names, load into RegisterViT with outputs equal to those reference models."""

import argparse

import pytest
import timm
import torch
from mmengine.logging import MMLogger
from safetensors.torch import load_file
from transformers import Dinov2Config, Dinov2Model, ViTConfig, ViTModel

from dinoreg_dense.checkpoint import CheckpointError, detect_format, read_arch
from dinoreg_dense.registry import MODELS

DEPTH = 4


def hub_state(model, folder) -> dict[str, torch.Tensor]:
    """An HF model's weights under the names the Hub and ``save_pretrained`` use."""
    model.save_pretrained(folder)
    return load_file(folder / "model.safetensors")


def official_from_hf(hf: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Rewrite HF DINOv2 / ViT weights under the key names of the official repositories."""
    out = {
        "cls_token": hf["embeddings.cls_token"],
        "pos_embed": hf["embeddings.position_embeddings"],
        "patch_embed.proj.weight": hf["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hf["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": hf["layernorm.weight"],
        "norm.bias": hf["layernorm.bias"],
    }
    if "embeddings.mask_token" in hf:
        out["mask_token"] = hf["embeddings.mask_token"]
    names = {  # official -> HF, inside a block; the first found of each list is used
        "norm1": ["norm1", "layernorm_before"],
        "norm2": ["norm2", "layernorm_after"],
        "attn.proj": ["attention.output.dense"],
        "mlp.fc1": ["mlp.fc1", "intermediate.dense"],
        "mlp.fc2": ["mlp.fc2", "output.dense"],
        "mlp.w12": ["mlp.weights_in"],
        "mlp.w3": ["mlp.weights_out"],
    }
    for i in range(depth):
        hf_block = f"encoder.layer.{i}."
        for ours, candidates in names.items():
            for name in candidates:
                if hf_block + name + ".weight" in hf:
                    for param in ("weight", "bias"):
                        out[f"blocks.{i}.{ours}.{param}"] = hf[f"{hf_block}{name}.{param}"]
                    break
        for param in ("weight", "bias"):
            qkv = [
                hf[f"{hf_block}attention.attention.{p}.{param}"] for p in ("query", "key", "value")
            ]
            out[f"blocks.{i}.attn.qkv.{param}"] = torch.cat(qkv)
        for j in (1, 2):
            if f"{hf_block}layer_scale{j}.lambda1" in hf:
                out[f"blocks.{i}.ls{j}.gamma"] = hf[f"{hf_block}layer_scale{j}.lambda1"]
    return out


def chunk_key(key: str) -> str:
    """``blocks.i.x`` -> ``blocks.i.i.x``: DINOv2's BlockChunk layout with one block per chunk,
    where chunk c holds its blocks under their global index."""
    if not key.startswith("blocks."):
        return key
    index = key.split(".")[1]
    return key.replace(f"blocks.{index}.", f"blocks.{index}.{index}.", 1)


def max_diff_to_hf(model, ref, kit, **forward_kwargs) -> float:
    worst = 0.0
    for height, width in kit.SIZES:
        x = kit.images(height, width)
        with torch.no_grad():
            out = ref(
                pixel_values=kit.pad_to_patches(x, model.patch_size),
                output_hidden_states=True,
                **forward_kwargs,
            )
        worst = max(
            worst, kit.compare(model, x, list(out.hidden_states[1:]), out.last_hidden_state)
        )
    return worst


def test_official_dinov2_with_registers_pth(tmp_path, kit):
    ref = timm.create_model(
        "vit_small_patch14_reg4_dinov2", pretrained=False, dynamic_img_size=True, depth=DEPTH
    )
    timm_state = kit.randomise_(ref, seed=40).state_dict()
    # Official files keep the cls position row apart from cls_token; timm added them together.
    cls_row = torch.randn(1, 1, 384)
    official = {
        "cls_token": timm_state["cls_token"] - cls_row,
        "pos_embed": torch.cat([cls_row, timm_state["pos_embed"]], dim=1),
        "register_tokens": timm_state["reg_token"],
        "mask_token": torch.randn(1, 384),
        "patch_embed.proj.weight": timm_state["patch_embed.proj.weight"],
        "patch_embed.proj.bias": timm_state["patch_embed.proj.bias"],
    }
    official.update({k: v for k, v in timm_state.items() if k.startswith(("blocks.", "norm."))})
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(official, path)

    assert detect_format(path) == "official DINOv2 with registers"
    arch = read_arch(path)
    assert (arch.num_register_tokens, arch.pos_embed_grid, arch.depth) == (4, (37, 37), DEPTH)
    assert (arch.interpolate_antialias, arch.interpolate_offset) == (True, 0.0)
    model = MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    worst = 0.0
    for height, width in kit.SIZES:
        x = kit.images(height, width)
        with torch.no_grad():
            pairs = ref.forward_intermediates(
                x,
                indices=DEPTH,
                output_fmt="NLC",
                intermediates_only=True,
                return_prefix_tokens=True,
            )
            blocks = [torch.cat([prefix, patches], dim=1) for patches, prefix in pairs]
            worst = max(worst, kit.compare(model, x, blocks, ref.norm(blocks[-1])))
    print(f"parity official DINOv2-reg .pth vs timm: {worst:.2e}")
    assert worst <= kit.TOLERANCE


def test_official_dinov2_pth_infers_the_official_resampling(tmp_path, kit):
    ref = kit.randomise_(
        Dinov2Model(
            Dinov2Config(
                hidden_size=384, num_hidden_layers=2, num_attention_heads=6, image_size=518
            )
        )
    )
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(official_from_hf(hub_state(ref, tmp_path / "hf"), depth=2), path)
    assert detect_format(path) == "official DINOv2"
    arch = read_arch(path)
    assert (arch.interpolate_antialias, arch.interpolate_offset) == (False, 0.1)
    assert arch == MODELS.build(dict(type="RegisterViT", arch="vits14", depth=2)).arch


@pytest.fixture(scope="module")
def dino_v1(tmp_path_factory, kit):
    """HF ViTModel with the official DINO v1 settings (eps 1e-6) and its official weights."""
    config = ViTConfig(
        hidden_size=384,
        num_hidden_layers=DEPTH,
        num_attention_heads=6,
        intermediate_size=1536,
        patch_size=16,
        image_size=224,
        layer_norm_eps=1e-6,
    )
    ref = kit.randomise_(ViTModel(config, add_pooling_layer=False), seed=41)
    folder = tmp_path_factory.mktemp("dino_v1")
    return ref, official_from_hf(hub_state(ref, folder / "hf"), depth=DEPTH), folder


def test_official_dino_v1_pretrain_pth(dino_v1, kit, capfd):
    ref, official, folder = dino_v1
    path = folder / "dino_deitsmall16_pretrain.pth"
    torch.save(official, path)
    arch = read_arch(path)
    assert arch == MODELS.build(dict(type="RegisterViT", arch="dino_vits16", depth=DEPTH)).arch
    # HF resamples with offset 0 where DINO v1 used 0.1; compare under HF's rule.
    # Through MMEngine's current logger (an INFO one, as the tools' runners make), so that the
    # tools' console and log file show it.
    MMLogger.get_instance("test_official_dino_v1_pretrain_pth", log_level="INFO")
    model = MODELS.build(
        dict(type="RegisterViT", arch=arch, interpolate_offset=0.0, checkpoint=str(path))
    )
    assert "interpolate_offset=0.0 (file: 0.1)" in "".join(capfd.readouterr())
    diff = max_diff_to_hf(model, ref, kit, interpolate_pos_encoding=True)
    print(f"parity official DINO v1 .pth vs HF ViTModel: {diff:.2e}")
    assert diff <= kit.TOLERANCE


def test_dino_v1_training_checkpoint_loads_the_teacher(dino_v1, kit):
    ref, official, folder = dino_v1
    student = {f"module.backbone.{k}": torch.randn_like(v) for k, v in official.items()}
    teacher = {f"backbone.{k}": v for k, v in official.items()}
    teacher["head.mlp.0.weight"] = torch.randn(8, 384)
    checkpoint = {
        "student": student,
        "teacher": teacher,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_small", patch_size=16),
    }
    path = folder / "checkpoint.pth"
    torch.save(checkpoint, path)
    assert detect_format(path) == "official DINO v1 (or timm ViT) under 'teacher.backbone.'"
    model = MODELS.build(
        dict(
            type="RegisterViT",
            arch="dino_vits16",
            depth=DEPTH,
            interpolate_offset=0.0,
            checkpoint=str(path),
        )
    )
    assert max_diff_to_hf(model, ref, kit, interpolate_pos_encoding=True) <= kit.TOLERANCE


@pytest.mark.parametrize("chunked", [False, True])
def test_vitg_swiglu_layout(tmp_path, kit, chunked):
    config = Dinov2Config(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=56,
        use_swiglu_ffn=True,
    )
    ref = kit.randomise_(Dinov2Model(config), seed=42)
    official = official_from_hf(hub_state(ref, tmp_path / "hf"), depth=2)
    assert "blocks.0.mlp.w12.weight" in official
    if chunked:
        official = {chunk_key(k): v for k, v in official.items()}
        assert "blocks.1.1.mlp.w3.weight" in official
    path = tmp_path / "vitg_layout.pth"
    torch.save(official, path)

    with pytest.raises(CheckpointError, match="set model.backbone.arch"):
        read_arch(path)  # embed 48 is no preset width: heads cannot be inferred
    arch = dict(
        embed_dim=48,
        depth=2,
        num_heads=2,
        ffn_layer="swiglu",
        pos_embed_grid=(4, 4),
        interpolate_offset=0.0,
    )
    model = MODELS.build(dict(type="RegisterViT", arch=arch, checkpoint=str(path)))
    diff = max_diff_to_hf(model, ref, kit)
    print(f"parity ViT-g SwiGLU layout (chunked={chunked}) vs HF Dinov2Model: {diff:.2e}")
    assert diff <= kit.TOLERANCE
