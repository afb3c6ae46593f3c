"""MMEngine Runner with safe checkpoint loading and atomic checkpoint writes."""

import atexit
import logging
import os
from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.dist import all_reduce_params
from mmengine.logging import MMLogger
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ..models.loss_guard import LossDivergedError
from ..registry import RUNNERS
from .atomic_backend import install_atomic_backend
from .run_checkpoint import check_state_dict_shapes, load_run_checkpoint, portable_message_hub


class _ConsoleDigest(logging.Filter):
    """Drops the long dumps and MMEngine's own deprecation notices from the console."""

    DROPPED = (
        "Config:\n",
        "\n" + "-" * 60 + "\nSystem environment",
        "Hooks will be executed in the following order",
        "Distributed training is not used, all SyncBatchNorm",
        '"FileClient" will be deprecated',
        '"HardDiskBackend" is the alias',
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.DROPPED)


_LOOP_STARTS = {"before_train": "train_loop", "before_val": "val_loop", "before_test": "test_loop"}


def check_class_count(model: torch.nn.Module, dataset: Any) -> None:
    """Raise a ``ValueError`` naming the fix when the dataset's classes (``metainfo['classes']``)
    are not as many as the model predicts (``num_classes``); models or datasets without classes
    (depth) pass. Checked once per loop start, not by a device sync in every training step."""
    model = model.module if is_model_wrapper(model) else model
    num_classes = getattr(model, "num_classes", None)
    classes = (getattr(dataset, "metainfo", None) or {}).get("classes")
    if num_classes is None or classes is None or len(classes) == num_classes:
        return
    raise ValueError(
        f"the dataset {type(dataset).__name__} has {len(classes)} classes but the model predicts "
        f"{num_classes}: set --cfg-options model.decode_head.num_classes={len(classes)} (or use "
        "the dataset the model was trained on)"
    )


def synchronize_buffers(model: torch.nn.Module) -> None:
    """Average the floating-point buffers (BatchNorm running mean / variance) over all ranks.

    Each process updates its BatchNorm statistics from its own images, so without this the ranks
    drift apart and the validation of rank 0 ... N would each see another model than the one the
    checkpoint holds. Running statistics are exponential moving averages, linear in the batch
    statistics, so averaging them after every iteration equals averaging once at the end: the
    training dynamics do not change.
    """
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    if buffers:
        all_reduce_params(buffers, op="mean")


def destroy_process_group() -> None:
    """Destroy the default process group, if there is one."""
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


@RUNNERS.register_module()
class DenseRunner(Runner):
    """``Runner`` that

    * saves its log history as plain lists and loads its own run checkpoints (``--resume``,
      ``load_from``, ``tools/test.py``) with ``weights_only=True``, where plain MMEngine fails on
      torch >= 2.6 unless it unpickles with ``weights_only=False``;
    * names the checkpoint to restart from when the loss diverges;
    * refuses checkpoints whose tensors do not fit the model (e.g. another class count) with
      an error naming the file and the fix, where MMEngine would only warn;
    * writes checkpoints atomically, so a run killed while saving resumes from the last one;
    * trains distributed on CPU (``torchrun ... --launcher pytorch`` without GPUs) with gloo,
      where MMEngine would call ``torch.cuda.set_device``, and destroys the process group it
      started before the interpreter exits.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        install_atomic_backend()
        self._sound_checkpoints: list[str] = []
        super().__init__(*args, **kwargs)

    def train(self) -> torch.nn.Module:
        """MMEngine's training; a diverged loss is reported with the checkpoint to restart from:
        the newest one saved while the loss was still at its normal level."""
        try:
            return super().train()
        except LossDivergedError as err:
            sound = [path for path in self._sound_checkpoints if os.path.isfile(path)]
            where = (
                f"The last checkpoint saved before the loss began to rise is {sound[-1]}."
                if sound
                else "No checkpoint was saved before the loss began to rise: start again with a "
                "lower learning rate."
            )
            raise LossDivergedError(f"{err} {where}") from err

    def build_logger(self, *args: Any, **kwargs: Any) -> MMLogger:
        """MMEngine's logger whose console leaves out the long dumps (environment, config, hook
        order: hundreds of lines before the first iteration, burying any error); the log file
        keeps them all."""
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if console and not any(isinstance(f, _ConsoleDigest) for f in handler.filters):
                handler.addFilter(_ConsoleDigest())
        return logger

    def _log_env(self, env_cfg: dict) -> None:
        """MMEngine's environment and config dump (log file only), plus one console line."""
        super()._log_env(env_cfg)
        self.logger.info(
            f"Distributed training: {self.distributed}, world size {self.world_size}, seed "
            f"{self.seed}; environment, config and hook order in {self.logger.log_file}"
        )

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        """MMEngine's ``save_checkpoint``, remembering whether the loss was at its normal level."""
        super().save_checkpoint(out_dir, filename, *args, **kwargs)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        guard = getattr(model, "loss_guard", None)
        if guard is None or guard.is_normal():
            self._sound_checkpoints.append(os.path.join(out_dir, filename))

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        """Run the hooks; a loop about to start checks its dataset's class count against the
        model, and a checkpoint about to be saved gets a pickle-safe message hub."""
        loop = _LOOP_STARTS.get(fn_name)
        if loop is not None:
            check_class_count(self.model, getattr(self, loop).dataloader.dataset)
        if fn_name == "after_train_iter" and self.distributed:
            # Before the checkpoint and validation hooks: every rank holds the same buffers.
            synchronize_buffers(self.model)
        super().call_hook(fn_name, **kwargs)
        if fn_name == "before_save_checkpoint" and "message_hub" in kwargs["checkpoint"]:
            checkpoint = kwargs["checkpoint"]
            checkpoint["message_hub"] = portable_message_hub(checkpoint["message_hub"])

    def setup_env(self, env_cfg: dict) -> None:
        """Start a gloo process group ourselves on machines without CUDA, then MMEngine's.

        A process group this runner starts is destroyed at exit, while the interpreter is still
        whole: left to finalization, a gloo group can abort the process (SIGABRT, "terminate
        called without an active exception") after the work is done (pytorch/pytorch#190489).
        """
        starts_group = self.distributed and not torch_dist.is_initialized()
        if starts_group and not torch.cuda.is_available():
            torch_dist.init_process_group(backend="gloo")
        super().setup_env(env_cfg)
        if starts_group:
            atexit.register(destroy_process_group)

    def wrap_model(self, model_wrapper_cfg: dict | None, model: torch.nn.Module) -> torch.nn.Module:
        """MMEngine's wrapping, except DDP over CPU modules takes no ``device_ids``."""
        if not self.distributed or torch.cuda.is_available() or is_model_wrapper(model):
            return super().wrap_model(model_wrapper_cfg, model)
        if self.cfg.get("sync_bn") is not None:
            raise ValueError(
                f"sync_bn={self.cfg.sync_bn!r} needs CUDA: torch's SyncBatchNorm does not run on "
                "CPU tensors, so with CPU (gloo) processes each would keep its own BatchNorm "
                "statistics. Remove sync_bn for CPU runs, or train on GPUs."
            )
        cfg = dict(model_wrapper_cfg or {})
        cfg.pop("type", None)
        cfg.setdefault("broadcast_buffers", False)
        cfg.setdefault("find_unused_parameters", self.cfg.get("find_unused_parameters", False))
        return MMDistributedDataParallel(module=model, device_ids=None, **cfg)

    def load_checkpoint(
        self,
        filename: str,
        map_location: Any = "cpu",
        strict: bool = False,
        revise_keys: list | None = None,
    ) -> dict:
        """Load ``filename`` into the model; returns the checkpoint dict."""
        checkpoint = load_run_checkpoint(filename, map_location=map_location)
        self.call_hook("after_load_checkpoint", checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        state_dict = checkpoint.get("state_dict", checkpoint)
        check_state_dict_shapes(
            model, {k.removeprefix("module."): v for k, v in state_dict.items()}, filename
        )
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys or [(r"^module\.", "")]
        )
        self._has_loaded = True
        self.logger.info(f"Loaded checkpoint {filename}")
        return checkpoint
