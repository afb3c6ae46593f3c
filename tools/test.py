"""Evaluate a trained checkpoint and optionally save predictions and overlays.

python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--work-dir DIR]
    [--cfg-options model.test_cfg.flip=True ...] [--launcher pytorch]
"""

import argparse
import os
from pathlib import Path

import torch
from mmengine.config import Config, DictAction

from dinoreg_dense.registry import RUNNERS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py")
    parser.add_argument("--out", help="folder for predicted label PNGs")
    parser.add_argument("--show-dir", help="folder for image | prediction | gt overlays")
    parser.add_argument("--work-dir", help="where logs and metrics go")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"checkpoint {args.checkpoint} does not exist")
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = (
        args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    )
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.out or args.show_dir:
        cfg.custom_hooks = list(cfg.get("custom_hooks", [])) + [
            dict(type="SegPredictionWriterHook", out_dir=args.out, show_dir=args.show_dir)
        ]
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.setdefault("runner_type", "DenseRunner")
    runner = RUNNERS.build(cfg)
    metrics = runner.test()
    print({k: round(float(v), 2) for k, v in metrics.items()})


if __name__ == "__main__":
    main()
