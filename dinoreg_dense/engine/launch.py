"""What tools/train.py and tools/test.py share: common arguments and config preparation."""

import argparse
import os
import sys
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.runner.checkpoint import find_latest_checkpoint

from .cfg_options import check_cfg_options
from .run_checkpoint import load_run_checkpoint


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
    """Read a config file and apply ``--cfg-options`` overrides.

    Raises:
        FileNotFoundError: the config file does not exist.
        ValueError: an override key that nothing reads (see :func:`check_cfg_options`).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"config file '{path}' does not exist (the configs are in configs/)"
        )
    cfg = Config.fromfile(path)
    if cfg_options:
        file_keys = set(cfg.keys())
        cfg.merge_from_dict(cfg_options)
        check_cfg_options(cfg, cfg_options, file_keys)
    return cfg


def resolve_resume(cfg: Config, resume: str | None) -> bool:
    """Set ``cfg.resume`` / ``cfg.load_from`` for ``--resume [CKPT]``; False: nothing to train.

    ``--resume`` alone takes the latest checkpoint of the work dir. Where there is none it says
    so on the console and starts a new run (a launcher that always passes ``--resume`` still
    works); a run that already reached ``max_iters`` is reported as finished.

    Raises:
        FileNotFoundError: ``--resume CKPT`` names a file that does not exist.
    """
    if resume is None:
        return True
    path = find_latest_checkpoint(cfg.work_dir) if resume == "auto" else resume
    if path is None:
        print(
            f"WARNING: --resume: nothing to resume in work dir '{cfg.work_dir}' (no checkpoint "
            "there); starting a NEW run. To resume another run, pass its --work-dir or "
            "--resume <checkpoint>.",
            file=sys.stderr,
        )
        cfg.resume, cfg.load_from = False, None
        return True
    if not Path(path).is_file():
        raise FileNotFoundError(f"--resume {path}: the checkpoint does not exist")
    done = int(load_run_checkpoint(path).get("meta", {}).get("iter", 0))
    max_iters = cfg.get("train_cfg", {}).get("max_iters")
    if max_iters is not None and done >= max_iters:
        print(
            f"The run in '{cfg.work_dir}' already finished: {path} is at iteration {done} of "
            f"{max_iters}; nothing to train. Raise train_cfg.max_iters to train further, or use "
            "tools/test.py to evaluate it."
        )
        return False
    print(f"Resuming from {path} (iteration {done} of {max_iters})")
    cfg.resume, cfg.load_from = True, path
    return True


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
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(loader) and cfg[loader].get("num_workers", 0) == 0:
            cfg[loader].persistent_workers = False  # torch refuses it without workers
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.setdefault("runner_type", "DenseRunner")
    return cfg
