"""Train a dense-prediction model from a config.

python tools/train.py configs/ade20k_linear_vits_reg.py [--work-dir DIR] [--resume [CKPT]]
    [--amp] [--auto-scale-lr] [--cfg-options model.backbone.checkpoint=PATH ...]
torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch
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
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        help="resume from CKPT, or from the latest checkpoint in the work dir if none is given",
    )
    parser.add_argument("--amp", action="store_true", help="mixed precision (bf16 on CPU)")
    parser.add_argument(
        "--auto-scale-lr", action="store_true", help="scale lr to the actual total batch size"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = (
        args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    )
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    if args.amp:
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
        else:
            cfg.optim_wrapper.type = "CPUAutocastOptimWrapper"
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.setdefault("runner_type", "DenseRunner")
    runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == "__main__":
    main()
