"""Train a dense-prediction model from a config.

python tools/train.py configs/ade20k_linear_vits_reg.py [--work-dir DIR] [--resume [CKPT]]
    [--amp] [--auto-scale-lr] [--threads N] [--cfg-options model.backbone.checkpoint=PATH ...]
torchrun --nproc_per_node 2 tools/train.py CONFIG --launcher pytorch
"""

import argparse

import torch

from dinoreg_dense.engine.launch import (
    add_runner_arguments,
    resolve_resume,
    run_tool,
    runner_config,
)
from dinoreg_dense.registry import RUNNERS


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", help="config file")
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
    add_runner_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = runner_config(args)  # also sets torch's threads and caps loader workers on CPU
    if not resolve_resume(cfg, args.resume, args.cfg_options):
        return
    if args.amp:
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
        else:
            cfg.optim_wrapper.type = "CPUAutocastOptimWrapper"
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    RUNNERS.build(cfg).train()


if __name__ == "__main__":
    run_tool(main)
