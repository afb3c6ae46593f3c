"""End to end for depth: the toy NYU-layout scenes, DINOv2's linear depth head, DepthMetric."""

from pathlib import Path

import numpy as np
from mmengine.config import Config
from PIL import Image

from dinoreg_dense.datasets.toy_depth import make_toy_nyu
from dinoreg_dense.registry import RUNNERS

CONFIG = Path(__file__).parents[2] / "configs" / "toy_depth_linear_vittiny.py"


def test_training_the_linear_depth_head_lowers_abs_rel(tmp_path):
    root = make_toy_nyu(tmp_path / "nyu", num_train=32, num_val=8)
    iters = 60
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path / "work")
    cfg.log_level = "WARNING"
    cfg.train_cfg.update(max_iters=iters, val_interval=iters + 1)
    cfg.param_scheduler[0].end = cfg.param_scheduler[1].begin = 5
    cfg.param_scheduler[1].end = iters
    cfg.default_hooks.checkpoint.interval = iters
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].dataset.data_root = str(root)
    out, show = tmp_path / "out", tmp_path / "show"
    cfg.custom_hooks = [dict(type="PredictionWriterHook", out_dir=str(out), show_dir=str(show))]
    runner = RUNNERS.build(cfg)
    before = runner.val()
    runner.train()
    after = runner.val()
    assert after["num_skipped"] == 0
    assert after["abs_rel"] < 0.85 * before["abs_rel"], (before, after)
    assert after["rmse"] < before["rmse"] and after["d1"] > before["d1"]

    # tools/test.py --out / --show-dir for depth: 16-bit millimetre PNGs and coloured pictures
    runner.test()
    written = sorted(out.glob("*.png"))
    assert len(written) == 8 and len(list(show.glob("*.png"))) == 8
    with Image.open(written[0]) as png:
        assert png.mode.startswith("I") and png.size == (128, 96)
        millimetres = np.asarray(png)
    assert millimetres.min() >= 1 and millimetres.max() <= 10_000  # clamped to 1 mm .. 10 m
