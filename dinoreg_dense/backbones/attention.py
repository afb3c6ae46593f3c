"""Multi-head self-attention through ``scaled_dot_product_attention``, with an explicit path that
also returns q / k / v and the attention matrix (LOST and attention maps need them)."""

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rope import apply_rope

# RoPE cos and sin, each (N patches, head_dim) float32.
Rope = tuple[Tensor, Tensor]


class AttentionMaps(NamedTuple):
    """Internals of one attention layer, all over the full token sequence (prefix included).

    q, k, v: (B, heads, T, head_dim) as the attention used them (q and k after RoPE, if any);
    attn: (B, heads, T, T), rows sum to 1; q_content, k_content: q and k before RoPE (the same
    tensors as q and k without RoPE).
    """

    q: Tensor
    k: Tensor
    v: Tensor
    attn: Tensor
    q_content: Tensor
    k_content: Tensor


@dataclass
class TokenAttention:
    """Internals of one attention layer split by token type (built by
    :meth:`~dinoreg_dense.backbones.RegisterViT.split_attention`, the one place that knows the
    token layout). h x w is the patch grid of the (padded) input.

    Attributes:
        patch_queries, patch_keys, patch_values: (B, heads, h, w, head_dim) of the patch tokens;
            queries and keys before RoPE (DINOv3): rotation by position would make identical
            patches compare less similar the further apart they are, and LOST / TokenCut compare
            patches by content (docs/discovery.md).
        cls_attention: (B, heads, h, w), the cls token's softmax attention row at the patch
            columns (not renormalised: the row's mass on cls / registers is left out), or
            ``None`` without a cls token.
        register_attention: (B, R, heads, h, w), each register's row at the patch columns the
            same way (R may be 0).
        full: the unsplit q / k / v / attention over the whole sequence in the backbone's
            token order, for anything else (e.g. attention between prefix tokens); its last
            h * w tokens are the patches in row-major order, the first ``num_prefix_tokens`` are
            cls and registers in the order ``RegisterViT`` documents.
    """

    patch_queries: Tensor
    patch_keys: Tensor
    patch_values: Tensor
    cls_attention: Tensor | None
    register_attention: Tensor
    full: AttentionMaps


class Attention(nn.Module):
    """Fused-qkv self-attention; ``qkv`` and ``proj`` carry the DINOv2 / timm parameter names.

    Args:
        dim, num_heads: embedding width and number of heads.
        qkv_bias, proj_bias: biases of the input and output projections.
        key_bias: whether the key third of the qkv bias is used (DINOv3 masks it to zero; the
            parameter keeps its full 3C size so checkpoints keep one layout).
        core_dtype: dtype in which ``forward`` computes softmax(q k^T / sqrt(d)) v when it differs
            from q / k / v, e.g. float32 under bfloat16 autocast on CPUs whose bfloat16 matmuls
            are slower than float32 ones (no AMX); the result is cast back. ``None`` (default)
            computes it in the inputs' dtype. ``forward_with_attention`` ignores it.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        key_bias: bool = True,
        core_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.core_dtype = core_dtype
        self.key_bias = key_bias
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, T, C) -> q, k, v, each (B, heads, T, head_dim), before RoPE."""
        b, t, c = x.shape
        bias = self.qkv.bias
        if bias is None or self.key_bias:
            qkv = self.qkv(x)
        else:
            masked = torch.cat((bias[:c], bias.new_zeros(c), bias[2 * c :]))
            qkv = F.linear(x, self.qkv.weight, masked)
        qkv = qkv.reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def _rotated_qkv(self, x: Tensor, rope: Rope | None) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self._qkv(x)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def _merge_heads(self, x: Tensor) -> Tensor:
        b, heads, t, head_dim = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, t, heads * head_dim))

    def forward(self, x: Tensor, rope: Rope | None = None) -> Tensor:
        """x: (B, T, C) -> (B, T, C); ``rope``: (cos, sin), each (N, head_dim), rotates the
        last N tokens' queries and keys (see :func:`~dinoreg_dense.backbones.rope.apply_rope`)."""
        q, k, v = self._rotated_qkv(x, rope)
        if self.core_dtype is None or self.core_dtype == q.dtype:
            return self._merge_heads(F.scaled_dot_product_attention(q, k, v))
        dtype = self.core_dtype
        # Autocast would cast the inputs straight back to its own lower-precision dtype.
        with torch.autocast(q.device.type, enabled=False):
            out = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype))
        return self._merge_heads(out.to(q.dtype))

    def forward_with_attention(
        self, x: Tensor, rope: Rope | None = None
    ) -> tuple[Tensor, AttentionMaps]:
        """Same output as ``forward`` plus the layer's q / k / v, softmax attention and the
        queries and keys before RoPE (:class:`AttentionMaps`)."""
        q_content, k_content, v = self._qkv(x)
        q, k = q_content, k_content
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self._merge_heads(attn @ v), AttentionMaps(q, k, v, attn, q_content, k_content)


def set_attention_core_dtype(module: nn.Module, dtype: torch.dtype | None) -> int:
    """Set ``core_dtype`` of every :class:`Attention` inside ``module`` (itself included).

    Returns the number of attention layers changed, so a caller can check it was not zero.
    """
    layers = [m for m in module.modules() if isinstance(m, Attention)]
    for layer in layers:
        layer.core_dtype = dtype
    return len(layers)
