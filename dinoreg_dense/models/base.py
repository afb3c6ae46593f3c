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
            values = {k: float(v.detach()) for k, v in log_vars.items()}
            raise FloatingPointError(
                f"non-finite training loss {values}; no weights were updated and the last "
                "checkpoint on disk is intact. To restart from it with other settings, use "
                "--cfg-options load_from=<work_dir>/iter_N.pth optim_wrapper.optimizer.lr=<lower> "
                "(--resume would restore the old learning-rate schedule too); also try without "
                "--amp and check the batch's images and labels."
            )
        return parsed, log_vars
