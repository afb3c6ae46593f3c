"""tools/test.py and tools/infer.py take a run checkpoint or released depth weights."""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from dinoreg_dense.checkpoint import CheckpointError
from dinoreg_dense.engine.model_weights import build_model_with_weights, resolve_checkpoint
from dinoreg_dense.registry import MODELS
from tests.heads.test_dpt_configs import to_released_names

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def small_depth_anything_cfg() -> Config:
    cfg = Config.fromfile(CONFIGS / "depth_anything_v2_vits.py")
    cfg.model.backbone.checkpoint = cfg.model.decode_head.checkpoint = None
    cfg.model.backbone.update(depth=4, out_indices=(0, 1, 2, 3))
    return cfg


def test_depth_anything_file_is_put_into_the_config_and_reproduces_the_model(tmp_path):
    cfg = small_depth_anything_cfg()
    source = MODELS.build(cfg.model).eval()
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(to_released_names(source), path)
    assert resolve_checkpoint(cfg, path) is None
    assert cfg.model.backbone.checkpoint == cfg.model.decode_head.checkpoint == str(path)
    loaded = MODELS.build(cfg.model).eval()
    x = torch.randn(1, 3, 56, 84)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(x), source.encode(x))


def test_run_checkpoint_is_returned_for_the_caller_to_load(tmp_path):
    cfg = small_depth_anything_cfg()
    model = MODELS.build(cfg.model)
    path = tmp_path / "iter_10.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(iter=10)), path)
    checkpoint = resolve_checkpoint(cfg, path)
    assert checkpoint is not None and checkpoint["meta"]["iter"] == 10
    assert cfg.model.decode_head.checkpoint is None  # the config is left alone


def test_run_checkpoint_model_loads_it_without_the_random_weights_warning(tmp_path, caplog):
    """The backbone warns that its weights are random when built from a config without a
    backbone checkpoint; a run checkpoint replaces them at once, so that warning is wrong there."""
    cfg = small_depth_anything_cfg()
    source = MODELS.build(cfg.model).eval()
    assert "RANDOM weights" in caplog.text  # the warning this test relies on still exists
    caplog.clear()
    path = tmp_path / "iter_10.pth"
    torch.save(dict(state_dict=source.state_dict(), meta=dict(dataset_meta=dict(x=1))), path)
    model, meta = build_model_with_weights(cfg, path)
    assert "RANDOM weights" not in caplog.text and meta["dataset_meta"] == dict(x=1)
    x = torch.randn(1, 3, 56, 84)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().encode(x), source.encode(x))
    MODELS.build(cfg.model)
    assert "RANDOM weights" in caplog.text  # silenced for that build only


def linear_head_file(tmp_path: Path, in_channels: int) -> Path:
    state = {
        "decode_head.conv_depth.weight": torch.randn(256, in_channels, 1, 1),
        "decode_head.conv_depth.bias": torch.randn(256),
    }
    path = tmp_path / "dinov2_vits14_nyu_linear_head.pth"
    torch.save(dict(meta={}, state_dict=state), path)
    return path


def test_released_head_alone_needs_the_backbone_file_and_says_how(tmp_path):
    cfg = Config.fromfile(CONFIGS / "nyu_linear_vits_reg.py")
    path = linear_head_file(tmp_path, 2 * 384)
    with pytest.raises(ValueError, match=r"holds only a depth head.*model\.backbone\.checkpoint="):
        resolve_checkpoint(cfg, path)


def test_released_head_settings_replace_the_configs(tmp_path):
    cfg = Config.fromfile(CONFIGS / "nyu_linear_vits_reg.py")
    cfg.model.backbone.checkpoint = "backbone.pth"
    path = linear_head_file(tmp_path, 2 * 384)
    assert resolve_checkpoint(cfg, path) is None
    head = cfg.model.decode_head
    assert (head.use_bn, head.max_depth, head.checkpoint) == (False, 80.0, str(path))
    assert cfg.model.backbone.norm_outputs is False  # DINOv2's heads read blocks before the norm
    assert cfg.model.backbone.checkpoint == "backbone.pth"  # a head-only file keeps it


def test_head_of_another_type_names_the_config_to_use(tmp_path):
    cfg = Config.fromfile(CONFIGS / "nyu_linear_vits_reg.py")
    source = MODELS.build(small_depth_anything_cfg().model)
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(to_released_names(source), path)
    with pytest.raises(CheckpointError, match=r"holds a DPTHead.*decode_head\.type='DPTHead'"):
        resolve_checkpoint(cfg, path)


def test_unknown_file_names_run_checkpoints_and_released_formats(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    cfg = Config.fromfile(CONFIGS / "nyu_linear_vits_reg.py")
    with pytest.raises(CheckpointError, match=r"Depth-Anything-V2 .pth.*run checkpoint"):
        resolve_checkpoint(cfg, path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        resolve_checkpoint(cfg, tmp_path / "missing.pth")
