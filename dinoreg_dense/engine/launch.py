"""What tools/train.py and tools/test.py share: common arguments and config preparation."""

import argparse
import os
from pathlib import Path

import torch
from mmengine.config import Config, DictAction


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--data-root``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--data-root", help="dataset folder for the train, val and test loaders alike"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)


def load_config(path: str, cfg_options: dict | None = None) -> Config:
    """Read a config file and apply ``--cfg-options`` overrides."""
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def runner_config(args: argparse.Namespace) -> Config:
    """Config for :class:`DenseRunner` from parsed tool arguments: overrides, data root,
    launcher, work dir (default ``work_dirs/<config name>``), and gloo instead of NCCL on
    machines without CUDA."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = (
        args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    )
    if args.data_root:
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            if cfg.get(loader):
                cfg[loader].dataset.data_root = args.data_root
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.setdefault("runner_type", "DenseRunner")
    return cfg
