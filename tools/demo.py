"""The README's main job: train and evaluate a linear segmentation head end to end, no downloads.

    python tools/demo.py [--work-dir work_dirs/demo] [--iters 300] [--threads N]

It writes the synthetic toy dataset (ADE20K layout), evaluates the untrained model, trains a
linear head on a tiny, randomly initialised register ViT (no pretrained weights exist on this
machine), evaluates again, and saves image | prediction | ground-truth overlays.
"""

import argparse
import logging
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import MMLogger

from dinoreg_dense.datasets import make_toy_ade20k
from dinoreg_dense.engine.launch import add_threads_argument, apply_num_threads
from dinoreg_dense.registry import RUNNERS

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "toy_linear_vittiny.py"


def at_least_two(value: str) -> int:
    """argparse type: an int of at least 2 (warm-up and decay each need an iteration)."""
    number = int(value)
    if number < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 iterations, got {number}")
    return number


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", default="work_dirs/demo")
    parser.add_argument("--iters", type=at_least_two, default=300)
    add_threads_argument(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # The tiny model's kernels last microseconds: each thread waits for all the others, so a
    # thread whose core is taken by another process stalls every step (ANCHORS.md).
    apply_num_threads(args.threads)  # the toy loaders run in the main process: no workers
    work_dir = Path(args.work_dir)
    data_root = make_toy_ade20k(work_dir / "data").parent
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_begin = args.iters + 1  # evaluated once after training, by runner.test()
    warmup, decay = cfg.param_scheduler
    warmup.end = decay.begin = min(warmup.end, args.iters // 2)  # short runs keep both phases
    decay.end = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
    show_dir = work_dir / "overlays"
    cfg.custom_hooks = [dict(type="PredictionWriterHook", show_dir=str(show_dir))]
    print(f"[demo] toy dataset (ADE20K layout, 4 classes) written to {data_root}")
    print("[demo] backbone: tiny register ViT (patch 8, 4 blocks, width 96, 4 registers) with")
    print("[demo]   RANDOM weights: no pretrained checkpoint is used or downloaded")

    runner = RUNNERS.build(cfg)
    logging.getLogger("dinoreg_dense").setLevel(logging.ERROR)
    before = runner.val()
    print(f"[demo] untrained: mIoU {before['mIoU']:.1f}  aAcc {before['aAcc']:.1f}")
    print(f"[demo] training the linear head for {args.iters} iterations (batch 8) ...")
    runner.train()
    after = runner.test()
    logger = MMLogger.get_current_instance()
    print(f"[demo] trained:   mIoU {after['mIoU']:.1f}  aAcc {after['aAcc']:.1f}")
    print(f"[demo] overlays (image | prediction | ground truth): {show_dir}/")
    print(f"[demo] checkpoint: {work_dir / f'iter_{args.iters}.pth'}; log: {logger.log_file}")
    print(
        "[demo] next: python tools/train.py configs/ade20k_linear_vits_reg.py --data-root <ADE20K> "
        "--cfg-options model.backbone.checkpoint=<DINOv2 weights> (docs/getting_started.md)"
    )


if __name__ == "__main__":
    main()
