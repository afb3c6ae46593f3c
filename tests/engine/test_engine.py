import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.optim import build_optim_wrapper

from dinoreg_dense.engine import (
    AtomicLocalBackend,
    check_state_dict_shapes,
    install_atomic_backend,
    load_run_checkpoint,
    portable_message_hub,
    vit_layer_id,
)
from dinoreg_dense.registry import MODELS


def segmentor(backbone_cfg: dict, num_classes: int, frozen: bool = False) -> torch.nn.Module:
    return MODELS.build(
        dict(
            type="Segmentor",
            backbone=dict(backbone_cfg, frozen=frozen),
            decode_head=dict(type="LinearHead", in_channels=32, num_classes=num_classes),
        )
    )


def test_atomic_put_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    install_atomic_backend()
    target = tmp_path / "iter_10.pth"
    backend = get_file_backend(str(target))
    assert isinstance(backend, AtomicLocalBackend)
    backend.put(b"old checkpoint", target)

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        backend.put(b"new, half written", target)
    assert target.read_bytes() == b"old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["iter_10.pth"]  # no temp file left


def _run_checkpoint(model: torch.nn.Module) -> dict:
    buffer = HistoryBuffer()
    buffer.update(0.5)
    buffer.update(0.25, count=3)
    return {
        "meta": {"iter": 10, "seed": 0, "best": np.float64(0.5), "dataset_meta": {"p": np.eye(3)}},
        "state_dict": model.state_dict(),
        "message_hub": {"log_scalars": {"train/loss": buffer}, "runtime_info": {"iter": 10}},
        "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
    }


def test_plain_mmengine_checkpoint_needs_unsafe_loading(tmp_path):
    # Why DenseRunner rewrites the message hub: a pickled HistoryBuffer is a foreign class.
    path = tmp_path / "mmengine.pth"
    torch.save(_run_checkpoint(torch.nn.Linear(2, 3)), path)
    with pytest.raises(RuntimeError, match="HistoryBuffer"):
        load_run_checkpoint(path)


def test_portable_run_checkpoint_round_trips_with_weights_only(tmp_path):
    checkpoint = _run_checkpoint(torch.nn.Linear(2, 3))
    checkpoint["message_hub"] = portable_message_hub(checkpoint["message_hub"])
    path = tmp_path / "iter_10.pth"
    torch.save(checkpoint, path)
    loaded = load_run_checkpoint(path)
    buffer = loaded["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.data[0].tolist() == [0.5, 0.25] and buffer.data[1].tolist() == [1, 3]
    assert math.isclose(buffer.mean(), (0.5 + 0.25) / 4)
    assert loaded["state_dict"]["weight"].shape == (3, 2)
    assert np.array_equal(loaded["meta"]["dataset_meta"]["p"], np.eye(3))
    assert loaded["meta"]["best"] == 0.5


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_run_checkpoint_refuses_foreign_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(RuntimeError, match="evil.pth"):
        load_run_checkpoint(path)


def test_truncated_and_missing_run_checkpoints(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save({"state_dict": torch.nn.Linear(2, 3).state_dict()}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeError, match="cut.pth.*truncated"):
        load_run_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_run_checkpoint(tmp_path / "nope.pth")


def test_class_count_mismatch_names_file_and_fix():
    head = MODELS.build(dict(type="LinearHead", in_channels=8, num_classes=4))
    other = MODELS.build(dict(type="LinearHead", in_channels=8, num_classes=150))
    with pytest.raises(ValueError, match=r"(?s)ckpt.pth.*150 classes.*builds 4.*num_classes=150"):
        check_state_dict_shapes(head, other.state_dict(), "ckpt.pth")
    check_state_dict_shapes(head, head.state_dict(), "ckpt.pth")  # same shapes pass


def test_vit_layer_ids():
    assert vit_layer_id("backbone.pos_embed", 12) == 0
    assert vit_layer_id("backbone.register_tokens", 12) == 0
    assert vit_layer_id("backbone.blocks.0.attn.qkv.weight", 12) == 1
    assert vit_layer_id("backbone.blocks.11.mlp.fc2.bias", 12) == 12
    assert vit_layer_id("backbone.norm.weight", 12) == 13


def test_layer_decay_and_backbone_lr_multiplier(tiny_backbone_cfg):
    model = segmentor(tiny_backbone_cfg, num_classes=3)
    wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.1),
            constructor="LayerDecayOptimWrapperConstructor",
            paramwise_cfg=dict(backbone_lr_mult=0.1, layer_decay_rate=0.5),
        ),
    )
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {names[id(g["params"][0])]: g for g in wrapper.optimizer.param_groups}
    # depth 2: embeddings at depth 0 -> 0.5**3, block 1 at depth 2 -> 0.5**1, norm -> 0.5**0
    assert groups["backbone.pos_embed"]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert groups["backbone.blocks.1.attn.qkv.weight"]["lr"] == pytest.approx(0.1 * 0.5)
    assert groups["backbone.norm.weight"]["lr"] == pytest.approx(0.1)
    assert groups["decode_head.conv_seg.weight"]["lr"] == 1.0
    assert groups["decode_head.conv_seg.weight"]["weight_decay"] == 0.1
    assert groups["decode_head.conv_seg.bias"]["weight_decay"] == 0.0
    assert groups["backbone.cls_token"]["weight_decay"] == 0.0
    assert groups["backbone.register_tokens"]["weight_decay"] == 0.0  # tokens, as documented


def test_frozen_backbone_parameters_stay_out_of_the_optimizer(tiny_backbone_cfg):
    model = segmentor(tiny_backbone_cfg, num_classes=3, frozen=True)
    wrapper = build_optim_wrapper(
        model,
        dict(
            optimizer=dict(type="AdamW", lr=1e-3, weight_decay=1e-4),
            constructor="LayerDecayOptimWrapperConstructor",
        ),
    )
    params = [p for g in wrapper.optimizer.param_groups for p in g["params"]]
    assert len(params) == len(list(model.decode_head.parameters()))


def test_nan_loss_raises_before_any_update(tiny_backbone_cfg):
    from tests.models.test_segmentor import make_batch

    model = segmentor(tiny_backbone_cfg, num_classes=5, frozen=True)
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type="SGD", lr=0.1)))
    with torch.no_grad():
        model.decode_head.conv_seg.bias[0] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="non-finite training loss.*--resume"):
        model.train_step(make_batch([(28, 28)]), wrapper)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]) or (v.isnan() == before[k].isnan()).all(), k
    assert model.decode_head.conv_seg.weight.grad is None  # no backward ran


def test_cpu_autocast_wrapper_trains_in_bfloat16(tiny_backbone_cfg):
    from tests.models.test_segmentor import make_batch

    model = segmentor(tiny_backbone_cfg, num_classes=5)
    wrapper = build_optim_wrapper(
        model, dict(type="CPUAutocastOptimWrapper", optimizer=dict(type="SGD", lr=0.1))
    )
    seen = []
    model.backbone.blocks[0].attn.qkv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = model.decode_head.conv_seg.weight.clone()
    log_vars = model.train_step(make_batch([(28, 28), (28, 28)]), wrapper)
    assert seen == [torch.bfloat16]  # linear layers ran in bf16
    assert torch.isfinite(log_vars["loss"])
    assert model.decode_head.conv_seg.weight.dtype == torch.float32  # master weights stay fp32
    assert not torch.equal(model.decode_head.conv_seg.weight, before)


def test_backbone_only_weights_are_refused_where_a_training_checkpoint_is_needed(
    tiny_backbone_cfg,
):
    model = segmentor(tiny_backbone_cfg, num_classes=3)
    backbone_only = model.backbone.state_dict()
    with pytest.raises(ValueError, match=r"(?s)vit.pth.*missing.*model.backbone.checkpoint") as e:
        check_state_dict_shapes(model, backbone_only, "vit.pth")
    assert "pass the same ones" in str(e.value)  # a run trained with --cfg-options
    without_head = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    with pytest.raises(ValueError, match="missing") as e:
        check_state_dict_shapes(model, without_head, "run.pth")
    assert "unexpected" not in str(e.value)  # no empty key list


def test_runner_config_from_tool_arguments(tmp_path):
    import argparse

    from dinoreg_dense.engine.launch import runner_config

    args = argparse.Namespace(
        config="configs/ade20k_linear_vits_reg.py",
        cfg_options={"model.decode_head.num_classes": 7},
        data_root=str(tmp_path),
        work_dir=None,
        launcher="none",
        local_rank=0,
    )
    cfg = runner_config(args)
    assert cfg.work_dir == "work_dirs/ade20k_linear_vits_reg"
    assert cfg.model.decode_head.num_classes == 7
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        assert cfg[loader].dataset.data_root == str(tmp_path)
    assert cfg.runner_type == "DenseRunner"
    if not torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == "gloo"


def _distributed_env(monkeypatch) -> list:
    """A 1-process 'pytorch' launch; returns the exit handlers the runner registers."""
    import atexit

    exit_handlers = []
    monkeypatch.setattr(atexit, "register", exit_handlers.append)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # MMEngine sets it when distributed
    env = dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    for key, value in {**env, "MASTER_PORT": str(29500 + os.getpid() % 1000)}.items():
        monkeypatch.setenv(key, value)
    return exit_handlers


def test_runner_destroys_its_process_group_at_exit(tmp_path, monkeypatch, tiny_backbone_cfg):
    import torch.distributed as dist

    from dinoreg_dense.engine import DenseRunner

    exit_handlers = _distributed_env(monkeypatch)
    DenseRunner(
        model=segmentor(tiny_backbone_cfg, num_classes=3),
        work_dir=str(tmp_path),
        launcher="pytorch",
        env_cfg=dict(dist_cfg=dict(backend="gloo")),
    )
    assert dist.is_initialized()
    for handler in exit_handlers:
        handler()
    assert not dist.is_initialized()


@pytest.mark.skipif(torch.cuda.is_available(), reason="SyncBatchNorm works on CUDA")
def test_sync_bn_on_cpu_processes_is_refused_not_ignored(tmp_path, monkeypatch, tiny_backbone_cfg):
    from mmengine.config import Config

    from dinoreg_dense.engine import DenseRunner

    exit_handlers = _distributed_env(monkeypatch)
    cfg = Config(
        dict(
            model=dict(
                type="Segmentor",
                backbone=tiny_backbone_cfg,
                decode_head=dict(type="LinearHead", in_channels=32, num_classes=3),
            ),
            work_dir=str(tmp_path),
            launcher="pytorch",
            env_cfg=dict(dist_cfg=dict(backend="gloo")),
            sync_bn="torch",
            default_scope="dinoreg_dense",
        )
    )
    try:
        with pytest.raises(ValueError, match="sync_bn='torch' needs CUDA"):
            DenseRunner.from_cfg(cfg)
    finally:
        for handler in exit_handlers:
            handler()


def test_dataset_class_count_is_checked_when_a_loop_starts(tmp_path):
    from mmengine.config import Config

    from dinoreg_dense.datasets import make_toy_ade20k
    from dinoreg_dense.registry import RUNNERS

    root = make_toy_ade20k(tmp_path / "toy", num_train=2, num_val=2, image_size=(32, 32))
    cfg = Config.fromfile(Path(__file__).parents[2] / "configs" / "toy_linear_vittiny.py")
    cfg.work_dir = str(tmp_path / "work")
    cfg.model.decode_head.num_classes = 3  # the toy dataset has 4
    cfg.model.backbone.update(embed_dim=32, depth=1, num_heads=2)
    cfg.model.decode_head.in_channels = 32
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].dataset.data_root = str(root.parent)
        cfg[loader].update(num_workers=0, persistent_workers=False)
    runner = RUNNERS.build(cfg)
    with pytest.raises(ValueError, match="4 classes but the model predicts 3.*num_classes=4"):
        runner.val()
    with pytest.raises(ValueError, match="4 classes but the model predicts 3"):
        runner.train()


def test_a_diverging_loss_stops_before_the_update_and_names_the_checkpoint(tmp_path):
    from mmengine.config import Config

    from dinoreg_dense.datasets import make_toy_ade20k
    from dinoreg_dense.models.loss_guard import LossDivergedError
    from dinoreg_dense.registry import RUNNERS

    root = make_toy_ade20k(tmp_path / "toy", num_train=4, num_val=2, image_size=(32, 32))
    cfg = Config.fromfile(Path(__file__).parents[2] / "configs" / "toy_linear_vittiny.py")
    cfg.work_dir = str(tmp_path / "work")
    cfg.model.backbone.update(embed_dim=32, depth=1, num_heads=2)
    cfg.model.decode_head.in_channels = 32
    cfg.optim_wrapper.optimizer.lr = 1e6
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 1
    cfg.train_cfg.update(max_iters=20, val_interval=100)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].dataset.data_root = str(root.parent)
        cfg[loader].update(num_workers=0, persistent_workers=False, batch_size=2)
    runner = RUNNERS.build(cfg)
    with pytest.raises(LossDivergedError, match="diverged.*iter_1.pth") as info:
        runner.train()
    step = int(re.search(r"at step (\d+)", str(info.value)).group(1))
    assert step == 2  # caught at the first jump, long before the loss is inf
    assert not (tmp_path / "work" / "iter_2.pth").exists()  # the diverged step saved nothing
