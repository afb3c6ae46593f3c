import io
import re
import sys

from mmengine.config import Config

from dinoreg_dense.datasets import make_toy_ade20k
from dinoreg_dense.registry import RUNNERS

TOY_CONFIG = "configs/toy_linear_vittiny.py"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train_and_test_toy(tmp_path, monkeypatch, stderr: io.StringIO | None = None, **bar) -> str:
    """Train the toy experiment (its runtime base holds the bar) for 3 iterations of batch 2 and
    test it; returns what went to ``stderr`` (by default not a terminal, as in CI)."""
    data_root = make_toy_ade20k(tmp_path / "data", num_train=4, num_val=2).parent
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.log_level = "WARNING"
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 3
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(data_root)
    cfg.default_hooks.progress.update(bar)
    stderr = stderr or io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    runner = RUNNERS.build(cfg)
    runner.train()
    runner.test()
    return stderr.getvalue()


def test_progress_bar_shows_iterations_loss_and_evaluation(tmp_path, monkeypatch):
    err = _train_and_test_toy(tmp_path, monkeypatch)
    assert re.search(r"train: 100%.*\| 3/3 \[.*loss \d+\.\d{4}", err), err
    assert re.search(r"val: 100%.*\| 1/1 ", err), err
    assert re.search(r"test: 100%.*\| 1/1 ", err), err
    # piped output: one draw at the start and one at the end of each bar, not one per iteration
    assert err.count("train:") <= 3, err


def test_progress_bar_only_on_rank_0(tmp_path, monkeypatch):
    monkeypatch.setattr("dinoreg_dense.engine.progress.is_main_process", lambda: False)
    err = _train_and_test_toy(tmp_path, monkeypatch)
    assert "train:" not in err and "test:" not in err, err


def test_progress_bar_redraws_on_a_terminal_at_its_interval(tmp_path, monkeypatch):
    err = _train_and_test_toy(tmp_path, monkeypatch, _Terminal(), interval_s=0.0)
    assert all(f"| {i}/3 " in err for i in (1, 2, 3)), err
