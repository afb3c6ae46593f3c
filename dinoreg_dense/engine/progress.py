"""A progress bar for training (iteration / max_iters, loss, ETA) and for evaluation."""

import sys
import time
from collections.abc import Mapping, Sequence

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import Runner
from tqdm import tqdm

from ..registry import HOOKS


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """tqdm bars on stderr, rank 0 only: training ``iter/max_iters`` with the loss and the time
    left, and one bar per validation or test pass.

    The bars are drawn whether or not stderr is a terminal, so logs and CI show that a run is
    alive; every redraw stays in a log file, hence the longer interval there.

    Args:
        interval_s: seconds between redraws on a terminal.
        piped_interval_s: seconds between redraws when stderr is not a terminal.
    """

    priority = "VERY_LOW"

    def __init__(self, interval_s: float = 1.0, piped_interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.piped_interval_s = piped_interval_s
        self._train_bar: tqdm | None = None
        self._eval_bar: tqdm | None = None

    def _open(self, total: int, desc: str, initial: int = 0) -> tqdm | None:
        if not is_main_process():
            return None
        stream = sys.stderr
        interval = self.interval_s if stream.isatty() else self.piped_interval_s
        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            file=stream,
            mininterval=interval,
            dynamic_ncols=True,
        )

    def before_train(self, runner: Runner) -> None:
        """Open the training bar at the current iteration (not 0 after a resume)."""
        self._train_bar = self._open(runner.max_iters, "train", initial=runner.iter)

    def after_train_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Mapping | None = None,
    ) -> None:
        """Advance the bar; read the loss only when the bar is about to redraw (reading it
        synchronises a GPU)."""
        bar = self._train_bar
        if bar is None:
            return
        due = time.time() - bar.last_print_t >= bar.mininterval or runner.iter + 1 == bar.total
        if due and outputs and "loss" in outputs:
            loss = torch.as_tensor(outputs["loss"]).detach().item()
            bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        bar.update(1)

    def after_train(self, runner: Runner) -> None:
        """Close the training bar."""
        if self._train_bar is not None:
            self._train_bar.close()
            self._train_bar = None

    def before_val_epoch(self, runner: Runner) -> None:
        """Open a bar over the validation batches."""
        self._eval_bar = self._open(len(runner.val_dataloader), "val")

    def before_test_epoch(self, runner: Runner) -> None:
        """Open a bar over the test batches."""
        self._eval_bar = self._open(len(runner.test_dataloader), "test")

    def after_val_iter(
        self,
        runner: Runner,
        batch_idx: int,
        data_batch: dict | None = None,
        outputs: Sequence | None = None,
    ) -> None:
        """Advance the validation (or test) bar."""
        if self._eval_bar is not None:
            self._eval_bar.update(1)

    def after_val_epoch(self, runner: Runner, metrics: dict | None = None) -> None:
        """Close the validation (or test) bar."""
        if self._eval_bar is not None:
            self._eval_bar.close()
            self._eval_bar = None

    after_test_iter = after_val_iter
    after_test_epoch = after_val_epoch
