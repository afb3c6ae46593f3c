"""Multi-head self-attention through ``scaled_dot_product_attention``, with an explicit path that
also returns q / k / v and the attention matrix (LOST and attention maps need them)."""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionMaps(NamedTuple):
    """Internals of one attention layer, all over the full token sequence (prefix included).

    q, k, v: (B, heads, T, head_dim); attn: (B, heads, T, T), rows sum to 1.
    """

    q: Tensor
    k: Tensor
    v: Tensor
    attn: Tensor


class Attention(nn.Module):
    """Fused-qkv self-attention; ``qkv`` and ``proj`` carry the DINOv2 / timm parameter names."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, c = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _merge_heads(self, x: Tensor) -> Tensor:
        b, _, t, _ = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, t, -1))

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        q, k, v = self._qkv(x)
        return self._merge_heads(F.scaled_dot_product_attention(q, k, v))

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, AttentionMaps]:
        """Same output as ``forward`` plus the layer's q / k / v and softmax attention."""
        q, k, v = self._qkv(x)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self._merge_heads(attn @ v), AttentionMaps(q, k, v, attn)
