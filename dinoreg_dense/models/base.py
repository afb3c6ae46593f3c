"""Behaviour shared by all task models."""

import math

from mmengine.model import BaseModel
from torch import Tensor


class DenseModel(BaseModel):
    """``BaseModel`` that refuses to optimise a non-finite loss.

    ``parse_losses`` runs before the backward pass and the optimizer step, in the plain and in
    the DistributedDataParallel training step alike, so raising there leaves the weights in
    memory and every checkpoint on disk untouched.
    """

    def parse_losses(self, losses: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum the ``loss*`` entries; raise ``FloatingPointError`` if the total is NaN/inf."""
        parsed, log_vars = super().parse_losses(losses)
        if not math.isfinite(parsed.item()):
            values = {k: float(v) for k, v in log_vars.items()}
            raise FloatingPointError(
                f"non-finite training loss {values}; no weights were updated. Lower the learning "
                "rate (optim_wrapper.optimizer.lr), disable --amp, or check the batch's labels; "
                "then resume from the last checkpoint with --resume."
            )
        return parsed, log_vars
