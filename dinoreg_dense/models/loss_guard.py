"""Stop training before a non-finite or diverging loss reaches the optimizer."""

import math

import torch.distributed as dist
from torch import Tensor


class LossDivergedError(FloatingPointError):
    """The training loss is NaN / inf, or far above its running level."""


class LossGuard:
    """Scale of the training loss, checked before every backward pass.

    The first loss of a run (about ln K for a fresh K-class head) sets the scale; a running level
    (an exponential moving average, ``momentum`` 0.9) follows the loss. A loss above
    ``divergence_factor`` times the larger of the two means the run diverged: with a learning rate
    far too high, the loss of a linear probe jumps from ~5 to ~1e6 within two iterations and only
    becomes inf a dozen iterations (and several diverged checkpoints) later. Measuring against the
    first loss, not the lowest one, keeps a hard batch late in training (0.6 against a level of
    0.05) from counting as divergence. In a distributed run the loss is averaged over the ranks
    first, so every rank makes the same decision.

    Args:
        divergence_factor: how far above its scale the loss may go; ``None`` checks only for
            NaN / inf.
        momentum: weight of the previous level in the moving average.

    Raises:
        ValueError: ``divergence_factor`` is not above 1.
    """

    def __init__(self, divergence_factor: float | None = 10.0, momentum: float = 0.9) -> None:
        if divergence_factor is not None and divergence_factor <= 1:
            raise ValueError(f"divergence_factor must be > 1 or None, got {divergence_factor}")
        self.divergence_factor = divergence_factor
        self.momentum = momentum
        self.initial: float | None = None
        self.level: float | None = None
        self.steps = 0

    def check(self, total: Tensor, parts: dict[str, Tensor]) -> None:
        """Raise :class:`LossDivergedError` for a bad ``total`` (scalar), else update the level.

        Args:
            total: the summed training loss of this iteration (one process's).
            parts: its logged terms, quoted in the message.
        """
        value = _mean_over_ranks(total)
        self.steps += 1
        if not math.isfinite(value):
            raise LossDivergedError(self._message(f"non-finite training loss {value}", parts))
        if self.initial is None:
            self.initial = self.level = value
            return
        scale = max(self.initial, self.level)
        if self.divergence_factor is not None and value > self.divergence_factor * scale:
            raise LossDivergedError(
                self._message(
                    f"the training loss diverged: {value:.4g} at step {self.steps} is more than "
                    f"{self.divergence_factor:g} times its scale {scale:.4g} (the first loss or "
                    "the running level, whichever is larger)",
                    parts,
                )
            )
        self.level = self.momentum * self.level + (1 - self.momentum) * value

    def is_normal(self) -> bool:
        """Whether the running level is not above the first loss: a checkpoint saved now is from
        before any divergence."""
        return self.level is None or self.level <= self.initial

    def _message(self, what: str, parts: dict[str, Tensor]) -> str:
        values = {k: float(v.detach()) for k, v in parts.items()}
        return (
            f"{what} ({values}); no weights were updated in this step. Restart from a "
            "checkpoint saved before the divergence with a lower learning rate: "
            "--cfg-options load_from=<work_dir>/iter_N.pth optim_wrapper.optimizer.lr=<lower> "
            "(--resume would restore the old learning-rate schedule too); also try without "
            "--amp and check the batch's images and labels. model.train_cfg.divergence_factor "
            "sets how far above its running level the loss may go (None: only NaN / inf)."
        )


def _mean_over_ranks(total: Tensor) -> float:
    value = total.detach().float().reshape(())
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)
