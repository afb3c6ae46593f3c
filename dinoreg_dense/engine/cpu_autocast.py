"""Mixed precision on CPU: MMEngine's AmpOptimWrapper requires CUDA, this one does not."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` running forward passes under ``torch.autocast('cpu', bfloat16)``.

    bfloat16 has float32's exponent range, so no loss scaling is needed.
    """

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context of the parent plus CPU bfloat16 autocast."""
        with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
            yield
