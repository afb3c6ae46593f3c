"""Wrong, broken and mismatched checkpoints fail loudly with messages that name the file, the
format and the fix; code inside a pickle is never run; no checkpoint means a warning."""

import json
import logging

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from transformers import Dinov2Config, Dinov2Model

from dinoreg_dense.checkpoint import CheckpointError, read_arch, save_checkpoint
from dinoreg_dense.registry import MODELS

CALLS: list[str] = []


def record_call(*args: object) -> None:
    """Would run if a pickle's payload were executed."""
    CALLS.append("unpickled code ran")


class Payload:
    def __reduce__(self):
        return record_call, ("payload",)


def official_state(embed_dim: int, depth: int, registers: int = 4) -> dict[str, torch.Tensor]:
    """Official DINOv2-reg key layout, random values, for a given width."""
    model = MODELS.build(
        dict(
            type="RegisterViT",
            arch="vits14_reg4",
            embed_dim=embed_dim,
            num_heads=embed_dim // 64,
            depth=depth,
            num_register_tokens=registers,
        )
    )
    state = {
        k.replace("patch_embed.", "patch_embed.proj."): v for k, v in model.state_dict().items()
    }
    state["mask_token"] = torch.zeros(1, embed_dim)
    return state


def build_vits(checkpoint, depth: int = 2):
    return MODELS.build(
        dict(type="RegisterViT", arch="vits14_reg4", depth=depth, checkpoint=str(checkpoint))
    )


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_vits(missing)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_arch(missing)


def test_resnet_state_dict_is_not_a_vit(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match="unrecognised checkpoint format") as error:
        build_vits(path)
    assert str(path) in str(error.value) and "conv1.weight" in str(error.value)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path, suffix):
    state = official_state(384, depth=1)
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        build_vits(path, depth=1)
    assert str(path) in str(error.value)


def test_a_file_that_is_no_checkpoint_at_all_is_called_corrupt_not_pickled_objects(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_text("garbage\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        read_arch(path)
    assert str(path) in str(error.value) and "not unpickled" not in str(error.value)


def test_pickled_code_is_refused_and_never_run(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"cls_token": Payload()}, path)
    with pytest.raises(CheckpointError, match="not unpickled"):
        read_arch(path)
    with pytest.raises(CheckpointError, match="not unpickled"):
        build_vits(path)
    assert CALLS == []


def test_vitb_file_into_vits_names_shapes_and_the_preset(tmp_path):
    path = tmp_path / "dinov2_vitb14_reg4_pretrain.pth"
    torch.save(official_state(768, depth=2), path)
    with pytest.raises(CheckpointError) as error:
        build_vits(path)
    message = str(error.value)
    assert str(path) in message
    assert "official DINOv2 with registers" in message
    assert "shape mismatch: cls_token file (1, 1, 768) vs model (1, 1, 384)" in message
    assert "looks like ViT-B/14 + 4 registers (embed 768, depth 2" in message
    assert "set model.backbone.arch='vitb14_reg4', model.backbone.depth=2" in message
    assert "--cfg-options model.backbone.arch=vitb14_reg4 model.backbone.depth=2)" in message


def test_hf_folder_mismatch_suggests_arch_none(tmp_path):
    config = Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56)
    Dinov2Model(config).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="Hugging Face Dinov2Model") as error:
        build_vits(tmp_path)
    assert "set model.backbone.arch=None" in str(error.value)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = official_state(384, depth=2)
    del state["norm.weight"]
    state["blocks.1.attn.q_norm.weight"] = torch.ones(64)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        build_vits(path)
    message = str(error.value)
    assert "missing from the file: norm.weight" in message
    assert "unexpected in the file: blocks.1.attn.q_norm.weight" in message


def test_register_count_mismatch(tmp_path):
    path = tmp_path / "no_registers.pth"
    torch.save(official_state(384, depth=2, registers=0), path)
    model = MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=2))
    with pytest.raises(CheckpointError, match="missing from the file: register_tokens"):
        model.load_pretrained(path)


def test_unsupported_hf_model_type_and_empty_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip_vision_model"}))
    save_file({"x": torch.zeros(1)}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="clip_vision_model"):
        read_arch(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        build_vits(empty)


def test_arch_none_without_a_checkpoint_is_refused_not_a_silent_vit_s14():
    with pytest.raises(ValueError, match="no checkpoint was given"):
        MODELS.build(dict(type="RegisterViT", arch=None))


def test_no_checkpoint_warns_about_random_weights(caplog):
    with caplog.at_level(logging.WARNING, logger="dinoreg_dense.backbones.vit"):
        MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=1, embed_dim=96))
    messages = [r.getMessage() for r in caplog.records if "RANDOM weights" in r.getMessage()]
    # the warning names the model that was built, not the preset it started from
    assert messages and "ViT-96d/14 + 4 registers (embed 96, depth 1, 6 heads)" in messages[0], (
        messages
    )


def test_a_loaded_checkpoint_is_logged_with_file_format_and_architecture(tmp_path, monkeypatch):
    model = MODELS.build(dict(type="RegisterViT", arch="vits14_reg4", depth=1, embed_dim=96))
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path)
    lines = []
    monkeypatch.setattr(
        "dinoreg_dense.backbones.vit.print_log", lambda msg, logger=None: lines.append(msg)
    )
    MODELS.build(dict(type="RegisterViT", arch=None, checkpoint=str(path)))
    assert len(lines) == 1 and str(path) in lines[0], lines
    assert "ViT-96d/14 + 4 registers (embed 96, depth 1" in lines[0] and "tensors" in lines[0]
