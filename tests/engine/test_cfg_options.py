"""--cfg-options typos and --resume no-ops are errors or loud, never silent."""

from pathlib import Path

import pytest
import torch

from dinoreg_dense.engine.launch import load_config, resolve_resume

CONFIG = str(Path(__file__).parents[2] / "configs" / "toy_linear_vittiny.py")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("optim_wrapper.optimizer.lr_", "'lr_' is not a key of optim_wrapper.optimizer.*'lr'"),
        ("train_cfg.max_iter", "'max_iter' is not a key of train_cfg.*'max_iters'"),
        ("model.backbone.out_indicies", "'out_indicies'.*did you mean 'out_indices'"),
        ("train_dataloader.batch_sizee", "DataLoader.*did you mean 'batch_size'"),
        ("model.decode_head.num_clases", "LinearHead.*did you mean 'num_classes'"),
        ("work_dirr", "top level.*did you mean 'work_dir'"),
        ("data_root", "changes nothing; use --data-root"),
        ("crop_size", "variable of the config file"),
    ],
)
def test_unknown_override_keys_name_the_nearest_valid_one(key, expected):
    with pytest.raises(ValueError, match=expected):
        load_config(CONFIG, {key: 1})


def test_valid_overrides_pass_and_apply():
    options = {
        "model.test_cfg.flip": True,
        "model.backbone.depth": 2,
        "model.backbone.frozen": False,
        "optim_wrapper.optimizer.lr": 0.5,
        "train_cfg.max_iters": 7,
        "train_dataloader.num_workers": 0,
        "train_dataloader.dataset.data_root": "x",
        "default_hooks.checkpoint.interval": 3,
        "sync_bn": "torch",
        # the fine-tuning command of docs/segmentation.md
        "optim_wrapper.paramwise_cfg.backbone_lr_mult": 0.1,
        "optim_wrapper.paramwise_cfg.layer_decay_rate": 0.9,
        "optim_wrapper.constructor": "LayerDecayOptimWrapperConstructor",
    }
    cfg = load_config(CONFIG, options)
    assert cfg.train_cfg.max_iters == 7 and cfg.model.backbone.depth == 2


def test_resume_in_an_empty_work_dir_says_so_loudly(tmp_path, capsys):
    cfg = load_config(CONFIG)
    cfg.work_dir = str(tmp_path)
    assert resolve_resume(cfg, "auto")
    assert "nothing to resume" in capsys.readouterr().err
    assert not cfg.resume and cfg.load_from is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_resume(cfg, str(tmp_path / "iter_5.pth"))


def test_resume_of_a_finished_run_says_it_is_finished(tmp_path, capsys):
    cfg = load_config(CONFIG)
    cfg.work_dir = str(tmp_path)
    checkpoint = tmp_path / "iter_300.pth"
    torch.save({"meta": {"iter": 300}, "state_dict": {}}, checkpoint)
    (tmp_path / "last_checkpoint").write_text(str(checkpoint))
    assert not resolve_resume(cfg, "auto")
    assert "already finished" in capsys.readouterr().out
    cfg.train_cfg.max_iters = 400
    assert resolve_resume(cfg, "auto") and cfg.resume and cfg.load_from == str(checkpoint)
    # an lr given with --resume would be replaced by the checkpoint's optimizer state: say so
    assert "nothing to resume" not in capsys.readouterr().err
    resolve_resume(cfg, "auto", {"optim_wrapper.optimizer.lr": 1e-4})
    assert "optim_wrapper.optimizer.lr from --cfg-options will not apply" in capsys.readouterr().err


def test_resume_in_a_copied_work_dir_takes_its_own_checkpoint(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    for folder in (old, new):
        folder.mkdir()
        torch.save({"meta": {"iter": 100}, "state_dict": {}}, folder / "iter_100.pth")
        # MMEngine writes an absolute path; the copy still names the old run's file
        (folder / "last_checkpoint").write_text(str(old / "iter_100.pth"))
    cfg = load_config(CONFIG)
    cfg.work_dir = str(new)
    assert resolve_resume(cfg, "auto") and cfg.load_from == str(new / "iter_100.pth")
    (new / "iter_100.pth").unlink()
    with pytest.raises(FileNotFoundError, match="last_checkpoint names .*not in the work dir"):
        resolve_resume(cfg, "auto")


def test_resume_after_a_kill_while_the_marker_was_written_takes_the_newest_checkpoint(
    tmp_path, capsys
):
    # MMEngine opens last_checkpoint with 'w' after saving: killed there, the file is empty.
    for it in (10, 20, 9):
        torch.save({"meta": {"iter": it}, "state_dict": {}}, tmp_path / f"iter_{it}.pth")
    (tmp_path / "last_checkpoint").write_text("")
    cfg = load_config(CONFIG)
    cfg.work_dir = str(tmp_path)
    assert resolve_resume(cfg, "auto") and cfg.load_from == str(tmp_path / "iter_20.pth")
    assert "last_checkpoint is empty" in capsys.readouterr().err
