"""Optimizer parameter groups for fine-tuning a ViT: backbone lr multiplier and layer decay."""

import re

from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS


def vit_layer_id(name: str, num_layers: int) -> int:
    """Depth of a backbone parameter: 0 for embeddings and tokens, i + 1 for block i,
    ``num_layers + 1`` for the final norm (and anything after the blocks)."""
    match = re.search(r"blocks\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    if any(key in name for key in ("patch_embed", "pos_embed", "cls_token", "register_tokens")):
        return 0
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups for a model with a ``backbone`` ViT and task heads.

    ``paramwise_cfg`` keys:
        backbone_lr_mult: lr multiplier for every backbone parameter (default 1.0).
        layer_decay_rate: backbone parameter at depth d (see :func:`vit_layer_id`) gets
            ``rate ** (num_layers + 1 - d)`` times the lr (default 1.0: no decay).
        no_weight_decay_1d: no weight decay for biases, norms, tokens and position embeddings
            (default True).

    Frozen parameters (``requires_grad=False``) are left out of the optimizer.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        # Explicit defaults keep paramwise_cfg non-empty, so MMEngine always goes through
        # add_params (which skips frozen weights) instead of passing model.parameters().
        defaults = dict(backbone_lr_mult=1.0, layer_decay_rate=1.0, no_weight_decay_1d=True)
        super().__init__(optim_wrapper_cfg, {**defaults, **(paramwise_cfg or {})})

    def add_params(self, params: list[dict], module: nn.Module, **kwargs: object) -> None:
        """Fill ``params`` with one group per trainable parameter."""
        cfg = self.paramwise_cfg
        backbone_mult = float(cfg["backbone_lr_mult"])
        decay_rate = float(cfg["layer_decay_rate"])
        skip_1d = bool(cfg["no_weight_decay_1d"])
        backbone = getattr(module, "backbone", None)
        num_layers = len(getattr(backbone, "blocks", ()))
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            group: dict = {"params": [param], "lr": self.base_lr}
            if self.base_wd is not None:
                token = name.endswith(("_token", "_tokens", "pos_embed"))
                no_decay = skip_1d and (param.ndim == 1 or token)
                group["weight_decay"] = 0.0 if no_decay else self.base_wd
            if name.startswith("backbone."):
                depth = vit_layer_id(name, num_layers)
                group["lr"] = self.base_lr * backbone_mult * decay_rate ** (num_layers + 1 - depth)
            params.append(group)
