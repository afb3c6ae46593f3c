"""The README's main job: train and evaluate a linear segmentation head, then a linear depth head,
end to end, no downloads.

    python tools/demo.py [--task all|seg|depth] [--work-dir work_dirs/demo] [--iters 300]
        [--depth-iters 20] [--threads N]

Segmentation: it writes the synthetic toy dataset (ADE20K layout), evaluates the untrained model,
trains a linear head on a tiny, randomly initialised register ViT (no pretrained weights exist on
this machine), evaluates again, and saves image | prediction | ground-truth overlays.
Depth: the same on synthetic NYU-layout scenes (depth in metres) with DINOv2's linear depth head,
scored by abs_rel, d1 (the share of pixels within 1.25x of the truth) and rmse (metres), and saves
image | predicted depth | ground-truth depth pictures coloured with a key in metres.
"""

import argparse
import logging
from pathlib import Path

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from dinoreg_dense.datasets import make_toy_ade20k
from dinoreg_dense.datasets.toy_depth import make_toy_nyu
from dinoreg_dense.engine.launch import add_threads_argument, apply_num_threads
from dinoreg_dense.registry import RUNNERS

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def at_least_two(value: str) -> int:
    """argparse type: an int of at least 2 (warm-up and decay each need an iteration)."""
    number = int(value)
    if number < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 iterations, got {number}")
    return number


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=("all", "seg", "depth"), default="all")
    parser.add_argument("--work-dir", default="work_dirs/demo")
    parser.add_argument("--iters", type=at_least_two, default=300, help="segmentation")
    parser.add_argument("--depth-iters", type=at_least_two, default=20)
    add_threads_argument(parser)
    return parser.parse_args()


def build_runner(
    config: str, work_dir: Path, data_root: Path, iters: int, show_dir: Path
) -> Runner:
    """A runner for a short run of a toy config: ``iters`` iterations of warm-up then decay,
    evaluated by the caller before and after, pictures of the final test in ``show_dir``."""
    cfg = Config.fromfile(CONFIGS / config)
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_begin = iters + 1  # evaluated once after training, by runner.test()
    warmup, decay = cfg.param_scheduler
    warmup.end = decay.begin = min(warmup.end, iters // 2)  # short runs keep both phases
    decay.end = iters
    cfg.default_hooks.checkpoint.interval = iters
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
    cfg.custom_hooks = [dict(type="PredictionWriterHook", show_dir=str(show_dir))]
    runner = RUNNERS.build(cfg)
    logging.getLogger("dinoreg_dense").setLevel(logging.ERROR)
    return runner


def train_and_report(runner: Runner, head: str, metrics: tuple[str, ...], digits: int) -> None:
    """Evaluate, train, test (writing the pictures) and print ``metrics`` before and after."""

    def scores(result: dict) -> str:
        return "  ".join(f"{name} {result[name]:.{digits}f}" for name in metrics)

    print(f"[demo] untrained: {scores(runner.val())}")
    iters, batch = runner.max_iters, runner.cfg.train_dataloader.batch_size
    print(f"[demo] training the {head} for {iters} iterations (batch {batch}) ...")
    runner.train()
    print(f"[demo] trained:   {scores(runner.test())}")
    log = MMLogger.get_current_instance().log_file
    print(f"[demo] checkpoint: {Path(runner.work_dir) / f'iter_{iters}.pth'}; log: {log}")


def segmentation(work_dir: Path, iters: int) -> None:
    """Toy ADE20K-layout scenes, linear segmentation head; overlays in ``work_dir/overlays``."""
    data_root = make_toy_ade20k(work_dir / "data").parent
    show_dir = work_dir / "overlays"
    print(f"[demo] toy dataset (ADE20K layout, 4 classes) written to {data_root}")
    runner = build_runner("toy_linear_vittiny.py", work_dir, data_root, iters, show_dir)
    train_and_report(runner, "linear head", ("mIoU", "aAcc"), digits=1)
    print(f"[demo] overlays (image | prediction | ground truth): {show_dir}/")


def depth(work_dir: Path, iters: int) -> None:
    """Toy NYU-layout scenes, linear depth head (run in ``work_dir/depth``); coloured depth
    pictures in ``work_dir/depth_pictures``."""
    data_root = make_toy_nyu(work_dir / "data" / "toy_nyu")
    show_dir = work_dir / "depth_pictures"
    print(f"[demo] toy depth dataset (NYU Depth v2 layout, 1-10 m) written to {data_root}")
    runner = build_runner(
        "toy_depth_linear_vittiny.py", work_dir / "depth", data_root, iters, show_dir
    )
    train_and_report(runner, "linear depth head", ("abs_rel", "d1", "rmse"), digits=3)
    print(f"[demo] depth pictures (image | prediction | ground truth, key in m): {show_dir}/")


def main() -> None:
    args = parse_args()
    # The tiny model's kernels last microseconds: each thread waits for all the others, so a
    # thread whose core is taken by another process stalls every step (ANCHORS.md).
    apply_num_threads(args.threads)  # the toy loaders run in the main process: no workers
    work_dir = Path(args.work_dir)
    print("[demo] backbone: tiny register ViT (patch 8, 4 blocks, width 96, 4 registers) with")
    print("[demo]   RANDOM weights: no pretrained checkpoint is used or downloaded")
    if args.task in ("all", "seg"):
        segmentation(work_dir, args.iters)
    if args.task in ("all", "depth"):
        depth(work_dir, args.depth_iters)
    print(
        "[demo] next: python tools/train.py configs/ade20k_linear_vits_reg.py --data-root <ADE20K> "
        "--cfg-options model.backbone.checkpoint=<DINOv2 weights> (docs/getting_started.md)"
    )


if __name__ == "__main__":
    main()
