"""Pre-norm transformer block with optional LayerScale and stochastic depth."""

from typing import Literal

import torch
from torch import Tensor, nn

from .attention import Attention, AttentionMaps
from .ffn import Mlp, SwiGLUFFN, swiglu_hidden_dim

NormKind = Literal["layernorm", "rmsnorm"]
FFNKind = Literal["mlp", "swiglu"]


def make_norm(kind: NormKind, dim: int, eps: float) -> nn.Module:
    """LayerNorm (DINOv2, DINO) or RMSNorm (some I-JEPA register ViTs)."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rmsnorm":
        return nn.RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm_layer {kind!r}; expected 'layernorm' or 'rmsnorm'")


class LayerScale(nn.Module):
    """Per-channel learned scale; the parameter is called ``gamma`` as in DINOv2 checkpoints."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C) -> (..., C)."""
        return x * self.gamma


class DropPath(nn.Module):
    """Drops the whole residual branch per sample during training (stochastic depth)."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, ...) -> (B, ...)."""
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        ffn_layer: FFNKind = "mlp",
        layerscale_init: float | None = None,
        norm_layer: NormKind = "layernorm",
        norm_eps: float = 1e-6,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = make_norm(norm_layer, dim, norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias)
        self.ls1 = LayerScale(dim, layerscale_init) if layerscale_init else nn.Identity()
        self.norm2 = make_norm(norm_layer, dim, norm_eps)
        if ffn_layer == "mlp":
            self.mlp: nn.Module = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        elif ffn_layer == "swiglu":
            self.mlp = SwiGLUFFN(dim, swiglu_hidden_dim(dim, mlp_ratio), bias=ffn_bias)
        else:
            raise ValueError(f"unknown ffn_layer {ffn_layer!r}; expected 'mlp' or 'swiglu'")
        self.ls2 = LayerScale(dim, layerscale_init) if layerscale_init else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, AttentionMaps]:
        """Same as ``forward`` and also the attention layer's q / k / v / attention."""
        attn_out, maps = self.attn.forward_with_attention(self.norm1(x))
        x = x + self.drop_path(self.ls1(attn_out))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x)))), maps
