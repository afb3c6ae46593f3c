"""What tools/train.py and tools/test.py share: common arguments and config preparation."""

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from mmengine.config import Config, DictAction
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..checkpoint import CheckpointError
from .cfg_options import RUNNER_KEYS, check_cfg_options
from .run_checkpoint import RunCheckpointError, load_run_checkpoint

ITER_FILE = re.compile(r"^iter_(\d+)\.pth$")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset``
    narrow), shared equally among the processes ``torchrun`` started on this machine
    (``LOCAL_WORLD_SIZE``); at least 1."""
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, len(os.sched_getaffinity(0)) // local_processes)


def default_num_threads(num_workers: int = 0, cores: int | None = None) -> int:
    """Torch threads for a CPU run: ``OMP_NUM_THREADS`` when the user (or torchrun) set it;
    otherwise the usable cores minus the data-loader workers minus one for the OS and anything
    else, or, where that leaves none, all cores but one; at least 1.

    Torch's threads meet at a barrier after every kernel, so one thread whose core another
    process takes stalls them all: on 2 cores with one busy neighbour a training step took 8-10x
    longer at 2 threads and ~1.7x at 1 (benchmarks/README.md). A spare core absorbs the neighbour.

    Args:
        num_workers: data-loader worker processes that will run beside the threads.
        cores: usable cores; :func:`usable_cores` when None.

    Raises:
        ValueError: ``OMP_NUM_THREADS`` is not a positive integer.
    """
    explicit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if explicit:
        if not explicit.isdigit() or int(explicit) < 1:
            raise ValueError(f"OMP_NUM_THREADS={explicit!r}: expected a positive integer")
        return int(explicit)
    cores = usable_cores() if cores is None else cores
    spare = cores - num_workers - 1
    return spare if spare >= 1 else max(1, cores - 1)


def apply_num_threads(requested: int | None = None, num_workers: int = 0) -> int:
    """Set torch's thread count: ``requested`` (``--threads``), else :func:`default_num_threads`
    on CPU-only machines; with CUDA torch's own default is kept (the work runs on the GPU and
    the CPU threads were not measured there) unless ``OMP_NUM_THREADS`` is set. Returns it."""
    if requested is None and torch.cuda.is_available() and "OMP_NUM_THREADS" not in os.environ:
        return torch.get_num_threads()
    threads = requested if requested is not None else default_num_threads(num_workers)
    if threads < 1:
        raise ValueError(f"--threads {threads}: expected at least 1")
    torch.set_num_threads(threads)
    return threads


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``, the torch thread count (default: :func:`apply_num_threads`)."""
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads (default on CPU: OMP_NUM_THREADS if set, else usable cores minus "
        "data-loader workers minus one; with CUDA: torch's default)",
    )


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """``--work-dir``, ``--data-root``, ``--cfg-options``, ``--launcher``, ``--local-rank``,
    ``--threads``."""
    parser.add_argument("--work-dir", help="where logs and checkpoints go")
    parser.add_argument(
        "--data-root", help="dataset folder for the train, val and test loaders alike"
    )
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, help="key=value overrides")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)
    add_threads_argument(parser)


def load_config(
    path: str, cfg_options: dict | None = None, top_keys: Iterable[str] = RUNNER_KEYS
) -> Config:
    """Read a config file and apply ``--cfg-options`` overrides.

    Args:
        path: the config file.
        cfg_options: dotted key -> value.
        top_keys: the config's top-level keys the tool reads, which an override may start with;
            by default the runner's.

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
        check_cfg_options(cfg, cfg_options, file_keys, top_keys)
    return cfg


def latest_checkpoint(work_dir: str) -> str | None:
    """The checkpoint MMEngine's ``last_checkpoint`` file names, taken from ``work_dir`` itself.

    The file holds an absolute path: in a work dir that was copied or moved it names the old
    run's file. The same file name inside ``work_dir`` is used then. MMEngine writes the file
    with a plain ``open('w')`` right after each checkpoint, so a run killed at that moment leaves
    it empty: then the newest ``iter_<N>.pth`` of ``work_dir`` is taken, with a note.

    Raises:
        FileNotFoundError: the named checkpoint is neither where it says nor in ``work_dir``.
    """
    marker = Path(work_dir) / "last_checkpoint"
    if marker.is_file() and not marker.read_text().strip():
        newest = newest_iter_checkpoint(work_dir)
        if newest is not None:
            print(
                f"WARNING: {marker} is empty (the run was stopped while writing it); resuming "
                f"from the newest checkpoint in the work dir, {newest}",
                file=sys.stderr,
            )
        return newest
    path = find_latest_checkpoint(work_dir)
    if path is None:
        return None
    local = Path(work_dir) / Path(path).name
    if local.is_file():
        return str(local)
    raise FileNotFoundError(
        f"--resume: {marker} names {path}, which is not in the work "
        f"dir '{work_dir}'; pass the checkpoint to resume from as --resume <file>"
    )


def newest_iter_checkpoint(work_dir: str) -> str | None:
    """The ``iter_<N>.pth`` of ``work_dir`` with the largest N, or None."""
    found = [
        (int(m[1]), p) for p in Path(work_dir).glob("iter_*.pth") if (m := ITER_FILE.match(p.name))
    ]
    return str(max(found)[1]) if found else None


def resolve_resume(cfg: Config, resume: str | None, cfg_options: dict | None = None) -> bool:
    """Set ``cfg.resume`` / ``cfg.load_from`` for ``--resume [CKPT]``; False: nothing to train.

    ``--resume`` alone takes the latest checkpoint of the work dir. Where there is none it says
    so on the console and starts a new run (a launcher that always passes ``--resume`` still
    works); a run that already reached ``max_iters`` is reported as finished.

    Raises:
        FileNotFoundError: ``--resume CKPT`` names a file that does not exist.
    """
    if resume is None:
        return True
    path = latest_checkpoint(cfg.work_dir) if resume == "auto" else resume
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
    overridden = [
        k for k in cfg_options or {} if k.startswith(("optim_wrapper", "param_scheduler"))
    ]
    if overridden:
        print(
            f"WARNING: --resume restores the optimizer and learning-rate schedule of {path}, so "
            f"{', '.join(overridden)} from --cfg-options will not apply; to restart from its "
            "weights with new settings use --cfg-options load_from=<checkpoint> instead.",
            file=sys.stderr,
        )
    cfg.resume, cfg.load_from = True, path
    return True


LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def share_cpu(cfg: Config, requested: int | None, cfg_options: dict | None = None) -> int:
    """Set torch's threads (:func:`apply_num_threads`) for the loaders' workers and, on
    CPU-only machines, cap each loader's ``num_workers`` to the cores the threads leave free
    (one worker on 2 cores at 1 thread), saying so on stderr. A loader whose ``num_workers``
    was given in ``--cfg-options`` keeps it. Returns the thread count.

    Loading an ADE20K batch costs 2-3 % of a CPU training step (benchmarks/README.md), so one
    worker keeps up; a second one only takes a core from the threads when it wakes.
    """
    loaders = [name for name in LOADERS if cfg.get(name)]
    num_workers = max((cfg[name].get("num_workers", 0) for name in loaders), default=0)
    threads = apply_num_threads(requested, num_workers)
    if torch.cuda.is_available():
        return threads
    cores = usable_cores()
    cap = max(0, cores - threads)
    given = {key.split(".")[0] for key in cfg_options or {} if key.endswith(".num_workers")}
    capped = []
    for name in loaders:
        workers = cfg[name].get("num_workers", 0)
        if workers > cap and name not in given:
            cfg[name].num_workers = cap
            capped.append(f"{name} {workers} -> {cap}")
    note = f"; num_workers capped: {', '.join(capped)}" if capped else ""
    print(
        f"CPU run on {cores} usable core(s): {threads} torch thread(s){note} "
        "(--threads N, OMP_NUM_THREADS or --cfg-options <loader>.num_workers=N to change)",
        file=sys.stderr,
    )
    return threads


def runner_config(args: argparse.Namespace) -> Config:
    """Config for :class:`DenseRunner` from parsed tool arguments: overrides, data root,
    launcher, work dir (default ``work_dirs/<config name>``), gloo instead of NCCL on machines
    without CUDA; torch threads and loader workers set by :func:`share_cpu`."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = (
        args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    )
    if args.data_root:
        for loader in LOADERS:
            if cfg.get(loader):
                cfg[loader].dataset.data_root = args.data_root
    share_cpu(cfg, getattr(args, "threads", None), args.cfg_options)
    for loader in LOADERS:
        if cfg.get(loader) and cfg[loader].get("num_workers", 0) == 0:
            cfg[loader].persistent_workers = False  # torch refuses it without workers
    if not torch.cuda.is_available():
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    cfg.setdefault("runner_type", "DenseRunner")
    return cfg


@contextmanager
def backbone_options_are(spelling: str) -> Iterator[None]:
    """Append ``spelling`` to a CheckpointError raised inside: checkpoint messages name config
    keys (``model.backbone.arch``) that a tool without that config spells otherwise (e.g.
    ``--arch``, ``backbone.arch``)."""
    try:
        yield
    except CheckpointError as err:
        raise CheckpointError(f"{err}\n{spelling}") from err


USER_ERRORS = (ValueError, OSError, FloatingPointError, CheckpointError, RunCheckpointError)
"""What the package raises for bad input (files, configs, checkpoints, data, diverging runs);
each message names the file or key and the fix."""


def run_tool(main: Callable[[], object]) -> None:
    """Run a tool's ``main``; a bad-input error prints one ``error: ...`` line and exits 1.

    The traceback of those errors tells a user nothing the message does not, and pushes the
    message off the screen. ``DINOREG_TRACEBACK=1`` shows it (for bug reports).
    """
    try:
        main()
    except USER_ERRORS as err:
        if os.environ.get("DINOREG_TRACEBACK") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        print("(DINOREG_TRACEBACK=1 shows where it was raised)", file=sys.stderr)
        raise SystemExit(1) from None
