"""DINOv3 ViT files are recognised and refused by name, not mistaken for DINOv2 (whose error would
ask for an ``arch`` setting that cannot help: DINOv3 has no position table)."""

import json

import pytest
import torch
from safetensors.torch import save_file

from dinoreg_dense.checkpoint import CheckpointError, PretrainedFile, detect_format, read_arch
from dinoreg_dense.registry import MODELS

DIM, HEADS, PATCH = 384, 6, 16  # ViT-S/16: a width whose head count the presets know
REFUSAL = "DINOv3 backbones are not supported yet"


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


def assert_refused(error: pytest.ExceptionInfo, path) -> None:
    message = str(error.value)
    assert message.startswith("DINOv3 checkpoint (file ") and str(path) in message
    assert "use a DINOv2 / DINO / timm / HF / birder file" in message
    assert "pos_embed" not in message and "official DINOv2" not in message


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
        assert_refused(error, path)
    with pytest.raises(CheckpointError, match=REFUSAL):
        MODELS.build(dict(type="RegisterViT", arch="vits14", depth=1, checkpoint=str(path)))


def test_hf_dinov3_folder_is_refused_by_its_config(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "dinov3_vit", "hidden_size": DIM, "patch_size": PATCH})
    )
    # transformers' DINOv3ViTModel names: no position table, a plain patch conv.
    hf_state = {
        "embeddings.cls_token": torch.randn(1, 1, DIM),
        "embeddings.register_tokens": torch.randn(1, 4, DIM),
        "embeddings.patch_embeddings.weight": torch.randn(DIM, 3, PATCH, PATCH),
        "embeddings.patch_embeddings.bias": torch.randn(DIM),
        "norm.weight": torch.ones(DIM),
    }
    save_file(hf_state, tmp_path / "model.safetensors")
    for read in (read_arch, PretrainedFile):
        with pytest.raises(CheckpointError, match="model_type 'dinov3_vit'") as error:
            read(tmp_path)
        assert_refused(error, tmp_path)
